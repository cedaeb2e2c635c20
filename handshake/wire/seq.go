package wire

import "encoding/binary"

// Seq is the SEQ parameter of UPDATE (RFC 7401 §5.2.16): the 32-bit Update
// ID, zero for a host's first UPDATE and incremented before each new one.
type Seq struct {
	UpdateID uint32
}

// ParseSeq parses SEQ contents (exactly 4 octets).
func ParseSeq(contents []byte) (Seq, error) {
	if len(contents) != 4 {
		return Seq{}, lengthError(ParamSeq, len(contents), "4")
	}
	return Seq{UpdateID: binary.BigEndian.Uint32(contents)}, nil
}

func (Seq) ParamType() ParamType { return ParamSeq }
func (Seq) Len() int             { return 4 }
func (s Seq) Encode(b []byte)    { binary.BigEndian.PutUint32(b, s.UpdateID) }

// Ack is the ACK parameter of UPDATE (RFC 7401 §5.2.17): one or more peer
// Update IDs, each 32 bits, so Length is a multiple of 4.
type Ack struct {
	IDs U32List
}

// ParseAck parses ACK contents: a non-zero multiple of 4 octets. IDs aliases
// contents.
func ParseAck(contents []byte) (Ack, error) {
	if len(contents) < 4 || len(contents)%4 != 0 {
		return Ack{}, lengthError(ParamAck, len(contents), "a non-zero multiple of 4")
	}
	return Ack{IDs: U32List(contents)}, nil
}

// MakeAck returns an ACK of the given Update IDs.
func MakeAck(ids ...uint32) Ack { return Ack{IDs: MakeU32List(ids...)} }

func (Ack) ParamType() ParamType { return ParamAck }
func (a Ack) Len() int           { return len(a.IDs) }
func (a Ack) Encode(b []byte)    { copy(b, a.IDs) }
func (a Ack) validate() error {
	if len(a.IDs) < 4 || len(a.IDs)%4 != 0 {
		return valueError(ParamAck, "ACK needs one or more whole 32-bit Update IDs")
	}
	return nil
}
