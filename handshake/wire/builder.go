package wire

import (
	"encoding/binary"
	"fmt"
)

// Encoder is the build side of a parameter: the plain struct forms in this
// package implement it.
type Encoder interface {
	// ParamType is the TLV type.
	ParamType() ParamType
	// Len is the length of the contents in octets (the TLV Length field).
	Len() int
	// Encode writes exactly Len() octets into contents, which the Builder
	// hands over zeroed, so reserved fields may simply be skipped.
	Encode(contents []byte)
}

// validator is implemented by encoders whose fields can hold values the wire
// cannot carry (a list longer than its limit, a length over 16 bits). The
// Builder calls it before Encode.
type validator interface {
	validate() error
}

// Builder appends one HIP packet to a caller's buffer: the header, then
// parameters in ascending type order (RFC 7401 §5.2.1), each padded with
// zeros to a multiple of 8 octets. The first error is kept and returned by
// Bytes; later calls do nothing.
//
// A Builder may be reused with Reset; its zero value must be Reset first.
type Builder struct {
	buf  []byte
	last ParamType
	n    int
	err  error
}

// NewBuilder starts a packet of type t in dst[:0] (dst may be nil).
func NewBuilder(dst []byte, t PacketType, sender, receiver HIT) *Builder {
	b := new(Builder)
	b.Reset(dst, t, sender, receiver)
	return b
}

// Reset starts a new packet in dst[:0], forgetting any previous state.
func (b *Builder) Reset(dst []byte, t PacketType, sender, receiver HIT) {
	*b = Builder{buf: dst[:0]}
	if t > 0x7f {
		b.err = fmt.Errorf("%w: %d does not fit in 7 bits", ErrUnknownType, uint8(t))
	}
	var h [HeaderLen]byte
	h[0] = NextHeaderNone
	h[1] = HeaderLen/8 - 1
	h[2] = uint8(t) & 0x7f   // leading fixed bit 0 (§5.1)
	h[3] = Version<<4 | 0x01 // reserved bits 0, trailing fixed bit 1 (§5.1)
	copy(h[8:24], sender[:]) // checksum (4:6) and controls (6:8) stay zero
	copy(h[24:40], receiver[:])
	b.buf = append(b.buf, h[:]...)
}

// SetControls sets the Controls field (§5.1.2).
func (b *Builder) SetControls(c uint16) { binary.BigEndian.PutUint16(b.buf[6:], c) }

// Add appends the parameter p. Parameters must be added in non-decreasing
// type order; otherwise the Builder records ErrBuilderOrder.
func (b *Builder) Add(p Encoder) {
	if b.err != nil {
		return
	}
	if v, ok := p.(validator); ok {
		if err := v.validate(); err != nil {
			b.err = err
			return
		}
	}
	contents := b.grow(p.ParamType(), p.Len())
	if contents != nil {
		p.Encode(contents)
	}
}

// AddRaw appends a TLV of type t with the given contents, for example a
// parameter copied verbatim from a received packet.
func (b *Builder) AddRaw(t ParamType, contents []byte) {
	if b.err != nil {
		return
	}
	if c := b.grow(t, len(contents)); c != nil {
		copy(c, contents)
	}
}

// AddParam appends a received parameter verbatim (padding is re-zeroed).
func (b *Builder) AddParam(p Param) { b.AddRaw(p.Type(), p.Contents()) }

// grow appends a TLV header and n zeroed content octets plus zero padding,
// and returns the contents slice (nil after an error).
func (b *Builder) grow(t ParamType, n int) []byte {
	if b.err != nil {
		return nil
	}
	if b.n > 0 && t < b.last {
		b.err = &ParamError{Type: t, Offset: len(b.buf), Err: ErrBuilderOrder,
			Detail: fmt.Sprintf("added after %v", b.last)}
		return nil
	}
	if n < 0 || n > 0xffff {
		b.err = &ParamError{Type: t, Offset: len(b.buf), Err: ErrTooLarge,
			Detail: fmt.Sprintf("contents of %d octets do not fit the 16-bit Length", n)}
		return nil
	}
	total := TLVLen(n)
	if len(b.buf)+total > MaxPacketLen {
		b.err = &ParamError{Type: t, Offset: len(b.buf), Err: ErrTooLarge,
			Detail: fmt.Sprintf("packet would be %d octets, the maximum is %d", len(b.buf)+total, MaxPacketLen)}
		return nil
	}
	off := len(b.buf)
	b.buf = append(b.buf, make([]byte, total)...) // zeroed: padding MUST be zero (§5.2.1)
	tlv := b.buf[off:]
	binary.BigEndian.PutUint16(tlv, uint16(t))
	binary.BigEndian.PutUint16(tlv[2:], uint16(n))
	b.last, b.n = t, b.n+1
	return tlv[paramHeaderLen : paramHeaderLen+n : paramHeaderLen+n]
}

// Len returns the number of octets built so far.
func (b *Builder) Len() int { return len(b.buf) }

// Err returns the first error recorded, or nil.
func (b *Builder) Err() error { return b.err }

// Bytes sets the Header Length to cover everything added so far and the
// checksum to zero, and returns the packet. The slice aliases the Builder's
// buffer. Building may continue after Bytes: called just before adding
// HIP_MAC or HIP_SIGNATURE, it returns exactly the octets those cover
// (RFC 7401 §6.4.1, §6.4.2). Raw HIP needs the checksum filled in afterwards
// (FillChecksum); HIP over UDP keeps it zero (RFC 5770 §5.1).
func (b *Builder) Bytes() ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	if len(b.buf) < HeaderLen {
		return nil, fmt.Errorf("%w: builder not started (call Reset)", ErrTooShort)
	}
	b.buf[1] = uint8(len(b.buf)/8 - 1)
	b.buf[4], b.buf[5] = 0, 0
	return b.buf, nil
}

// Packet is Bytes read back as a Packet view (ParsePacket), for a caller
// that goes on to read what it built; the view aliases the buffer too.
func (b *Builder) Packet() (Packet, error) {
	raw, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	return ParsePacket(raw)
}

// Extend continues building on the finished packet p: further parameters
// are appended to it in place (p's spare capacity is used first) and must
// not sort before its last parameter. A relay appends RELAY_FROM and
// RELAY_HMAC to a packet it forwards this way, and a registered host
// RELAY_TO and RELAY_HMAC to one it sends through its relay (RFC 5770
// §4.5), after the sender's HIP_SIGNATURE.
func (b *Builder) Extend(p Packet) {
	*b = Builder{buf: p[:p.Len()]}
	it := p.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		b.last, b.n = q.Type(), b.n+1
	}
	if err := it.Err(); err != nil {
		b.err = err
	}
}
