package wire

// The octets HIP_MAC, HIP_MAC_2, HIP_SIGNATURE and HIP_SIGNATURE_2 cover
// (RFC 7401 §6.4). Each is the packet up to the beginning of that parameter,
// with the Checksum zero and the Header Length rewritten to cover only those
// octets. These functions build them on the receiving side from a parsed
// packet; on the sending side Builder.Bytes, called before adding the
// parameter, returns the same octets in place.
//
// end is the Offset of the HIP_MAC / HIP_SIGNATURE parameter in p. Because
// parameters are sorted by type (§5.2.1), the octets before it are exactly
// "the parameters with type values from 1 to (its type - 1)".

// AppendCovered appends the HIP header and parameters of p before offset
// end, with Checksum zero and Header Length = end/8 - 1: the input of
// HIP_MAC (§6.4.1) and HIP_SIGNATURE (§6.4.2).
func AppendCovered(dst []byte, p Packet, end int) []byte {
	end = clampEnd(p, end)
	off := len(dst)
	dst = append(dst, p[:end]...)
	h := dst[off:]
	h[1] = uint8(end/8 - 1)
	h[4], h[5] = 0, 0
	return dst
}

// AppendMAC2Covered appends the input of HIP_MAC_2 (§6.4.1): the packet
// before offset end followed by the Responder's HOST_ID parameter exactly as
// it was received in R1 (hostIDTLV: the whole TLV with its padding, as
// Param.TLV returns it), with Header Length covering both and Checksum zero.
func AppendMAC2Covered(dst []byte, p Packet, end int, hostIDTLV []byte) []byte {
	end = clampEnd(p, end)
	off := len(dst)
	dst = append(dst, p[:end]...)
	dst = append(dst, hostIDTLV...)
	h := dst[off:]
	h[1] = uint8((end+len(hostIDTLV))/8 - 1)
	h[4], h[5] = 0, 0
	return dst
}

// AppendSignature2Covered appends the input of HIP_SIGNATURE_2 (§5.2.15,
// §6.4.2): as AppendCovered, and also with the Receiver's HIT (the
// Initiator's, in R1) and the PUZZLE parameter's Opaque and #I set to zero,
// so that R1s can be signed before they are addressed.
func AppendSignature2Covered(dst []byte, p Packet, end int) []byte {
	off := len(dst)
	dst = AppendCovered(dst, p, end)
	q := Packet(dst[off:])
	clear(q[24:40])
	if pz, ok := q.Param(ParamPuzzle); ok {
		c := pz.Contents()
		if len(c) >= 4 {
			clear(c[2:]) // Opaque and #I
		}
	}
	return dst
}

// clampEnd keeps end inside the packet and on an 8-octet boundary.
func clampEnd(p Packet, end int) int {
	if end > len(p) {
		end = len(p)
	}
	if end < HeaderLen {
		end = HeaderLen
	}
	return end &^ 7
}

// SetReceiverHIT writes the Receiver's HIT in place: for a pre-built R1
// whose HIP_SIGNATURE_2 was computed with it zero (§5.2.15).
func (p Packet) SetReceiverHIT(h HIT) { copy(p[24:40], h[:]) }

// SetPuzzle writes Opaque and #I into the PUZZLE parameter of p in place:
// for a pre-built R1 (§5.3.2). It reports false if p has no PUZZLE or its #I
// is not len(i) octets long.
func (p Packet) SetPuzzle(opaque [2]byte, i []byte) bool {
	pz, ok := p.Param(ParamPuzzle)
	if !ok {
		return false
	}
	c := pz.Contents()
	if len(c) != 4+len(i) {
		return false
	}
	copy(c[2:4], opaque[:])
	copy(c[4:], i)
	return true
}
