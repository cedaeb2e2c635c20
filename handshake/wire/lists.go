package wire

import (
	"encoding/binary"
	"fmt"
)

// U16List is a list of 16-bit IDs kept as the raw big-endian octets of the
// wire, so that parsing a list never allocates. Build one with MakeU16List.
type U16List []byte

// MakeU16List encodes ids as a U16List.
func MakeU16List(ids ...uint16) U16List {
	l := make(U16List, 2*len(ids))
	for i, id := range ids {
		binary.BigEndian.PutUint16(l[2*i:], id)
	}
	return l
}

// Len returns the number of IDs.
func (l U16List) Len() int { return len(l) / 2 }

// At returns the i-th ID.
func (l U16List) At(i int) uint16 { return binary.BigEndian.Uint16(l[2*i:]) }

// Contains reports whether id is in the list.
func (l U16List) Contains(id uint16) bool {
	for i := 0; i+1 < len(l); i += 2 {
		if binary.BigEndian.Uint16(l[i:]) == id {
			return true
		}
	}
	return false
}

// Index returns the position of id in the list, or -1.
func (l U16List) Index(id uint16) int {
	for i := 0; i+1 < len(l); i += 2 {
		if binary.BigEndian.Uint16(l[i:]) == id {
			return i / 2
		}
	}
	return -1
}

// U32List is a list of 32-bit values kept as raw big-endian octets.
type U32List []byte

// MakeU32List encodes vs as a U32List.
func MakeU32List(vs ...uint32) U32List {
	l := make(U32List, 4*len(vs))
	for i, v := range vs {
		binary.BigEndian.PutUint32(l[4*i:], v)
	}
	return l
}

// Len returns the number of values.
func (l U32List) Len() int { return len(l) / 4 }

// At returns the i-th value.
func (l U32List) At(i int) uint32 { return binary.BigEndian.Uint32(l[4*i:]) }

// Contains reports whether v is in the list.
func (l U32List) Contains(v uint32) bool {
	for i := 0; i+3 < len(l); i += 4 {
		if binary.BigEndian.Uint32(l[i:]) == v {
			return true
		}
	}
	return false
}

// MaxListIDs is the most IDs a sender may put in HIP_CIPHER (RFC 7401 §5.2.8)
// or ESP_TRANSFORM (RFC 7402 §5.1.2).
const MaxListIDs = 6

// DHGroupList is the DH_GROUP_LIST parameter (RFC 7401 §5.2.6): one octet
// per DH Group ID, in the sender's order of preference. Length is the number
// of IDs.
type DHGroupList struct {
	Groups []byte
}

// ParseDHGroupList parses DH_GROUP_LIST contents (at least one ID). Groups
// aliases contents.
func ParseDHGroupList(contents []byte) (DHGroupList, error) {
	if len(contents) < 1 {
		return DHGroupList{}, lengthError(ParamDHGroupList, 0, "at least 1")
	}
	return DHGroupList{Groups: contents}, nil
}

// Len returns the number of groups, which is also the contents length.
func (l DHGroupList) Len() int { return len(l.Groups) }

// At returns the i-th group ID.
func (l DHGroupList) At(i int) uint8 { return l.Groups[i] }

// Contains reports whether group g is listed.
func (l DHGroupList) Contains(g uint8) bool {
	for _, x := range l.Groups {
		if x == g {
			return true
		}
	}
	return false
}

func (DHGroupList) ParamType() ParamType { return ParamDHGroupList }
func (l DHGroupList) Encode(b []byte)    { copy(b, l.Groups) }
func (l DHGroupList) validate() error {
	if len(l.Groups) < 1 {
		return valueError(ParamDHGroupList, "empty list")
	}
	return nil
}

// MakeDHGroupList returns a DH_GROUP_LIST of the given groups in order of
// preference.
func MakeDHGroupList(groups ...uint8) DHGroupList { return DHGroupList{Groups: groups} }

// HITSuiteList is the HIT_SUITE_LIST parameter of R1 (RFC 7401 §5.2.10): one
// octet per HIT Suite, in order of preference. The suite ID (the 4-bit OGA ID
// of the ORCHID) is the high nibble; the low nibble is reserved, zero when
// sent.
type HITSuiteList struct {
	IDs []byte
}

// ParseHITSuiteList parses HIT_SUITE_LIST contents (at least one ID). IDs
// aliases contents. A non-zero low nibble is not rejected here: the text
// makes it a SHOULD-level error that MAY be answered with
// UNSUPPORTED_HIT_SUITE, a decision for the caller (see HasReservedBits).
func ParseHITSuiteList(contents []byte) (HITSuiteList, error) {
	if len(contents) < 1 {
		return HITSuiteList{}, lengthError(ParamHITSuiteList, 0, "at least 1")
	}
	return HITSuiteList{IDs: contents}, nil
}

// MakeHITSuiteList encodes 4-bit suite IDs (HITSuiteRSADSASHA256, ...) as
// the 8-bit list entries suite<<4.
func MakeHITSuiteList(suites ...uint8) HITSuiteList {
	ids := make([]byte, len(suites))
	for i, s := range suites {
		ids[i] = s << 4
	}
	return HITSuiteList{IDs: ids}
}

// Len returns the number of IDs, which is also the contents length.
func (l HITSuiteList) Len() int { return len(l.IDs) }

// Suite returns the 4-bit suite ID of the i-th entry.
func (l HITSuiteList) Suite(i int) uint8 { return l.IDs[i] >> 4 }

// ContainsSuite reports whether the 4-bit suite is listed with its reserved
// bits zero.
func (l HITSuiteList) ContainsSuite(suite uint8) bool {
	for _, x := range l.IDs {
		if x == suite<<4 {
			return true
		}
	}
	return false
}

// HasReservedBits reports whether any entry has a non-zero low nibble.
func (l HITSuiteList) HasReservedBits() bool {
	for _, x := range l.IDs {
		if x&0x0f != 0 {
			return true
		}
	}
	return false
}

func (HITSuiteList) ParamType() ParamType { return ParamHITSuiteList }
func (l HITSuiteList) Encode(b []byte)    { copy(b, l.IDs) }
func (l HITSuiteList) validate() error {
	if len(l.IDs) < 1 {
		return valueError(ParamHITSuiteList, "empty list")
	}
	return nil
}

// TransportFormatList is the TRANSPORT_FORMAT_LIST parameter (RFC 7401
// §5.2.11): 16-bit transport format types in order of preference; Length is
// 2 x the number of types. The only format defined is ESP, 4095
// (RFC 7402 §4.1.1).
type TransportFormatList struct {
	IDs U16List
}

// ParseTransportFormatList parses TRANSPORT_FORMAT_LIST contents: a non-empty
// list of 16-bit types. IDs aliases contents.
func ParseTransportFormatList(contents []byte) (TransportFormatList, error) {
	l, err := parseU16List(ParamTransportFormatList, contents)
	return TransportFormatList{IDs: l}, err
}

func (TransportFormatList) ParamType() ParamType { return ParamTransportFormatList }
func (l TransportFormatList) Len() int           { return len(l.IDs) }
func (l TransportFormatList) Encode(b []byte)    { copy(b, l.IDs) }
func (l TransportFormatList) validate() error {
	return validateU16List(ParamTransportFormatList, l.IDs, 0)
}

// parseU16List checks that contents is a non-empty whole number of 16-bit IDs.
func parseU16List(t ParamType, contents []byte) (U16List, error) {
	if len(contents) < 2 || len(contents)%2 != 0 {
		return nil, lengthError(t, len(contents), "a non-zero multiple of 2")
	}
	return U16List(contents), nil
}

// validateU16List checks a list about to be built: whole IDs, at least one,
// and at most max if max > 0.
func validateU16List(t ParamType, l U16List, max int) error {
	switch {
	case len(l)%2 != 0:
		return valueError(t, "odd number of octets in a list of 16-bit IDs")
	case len(l) == 0:
		return valueError(t, "empty list")
	case max > 0 && l.Len() > max:
		return valueError(t, fmt.Sprintf("%d IDs, at most %d may be sent", l.Len(), max))
	}
	return nil
}
