package hostid

// hitContextID is the ORCHIDv2 Context ID of HIP (RFC 7401 §3.2): the
// 128-bit value hashed in front of the Host Identity when a HIT is derived.
var hitContextID = [16]byte{
	0xF0, 0xEF, 0xF0, 0x2F, 0xBF, 0xF4, 0x3D, 0x0F,
	0xE7, 0x93, 0x0C, 0x3C, 0x6E, 0x61, 0x74, 0xEA,
}

// orchidPrefix is the ORCHIDv2 prefix 2001:20::/28 (RFC 7343 §2, §6): the
// first 28 bits of every HIT. The low nibble of byte 3 carries the OGA ID.
var orchidPrefix = [4]byte{0x20, 0x01, 0x00, 0x20}

// HITFromHI derives the HIT of a Host Identity as an ORCHIDv2 (RFC 7343 §2):
//
//	ORCHID := Prefix | OGA ID | Encode_96( Hash( Context ID | Input ) )
//
// with Prefix 2001:20::/28, OGA ID the HIT suite, Hash the suite's hash,
// Context ID the HIP value F0EF F02F BFF4 3D0F E793 0C3C 6E61 74EA, and
// Input the Host Identity field exactly as it is (or was) carried in
// HOST_ID (RFC 7401 §3.2); the prefix and OGA ID are not hashed.
//
// Encode_96 is "the middle 96-bit-long bitstring" of the hash (RFC 7343
// §2). We read "middle" as: drop the same number of bits before and after
// the 96 kept bits, (L - 96) / 2 on each side for an L-bit hash. For the
// three suites L - 96 is a multiple of 16, so the slice falls on octets:
// SHA-256 keeps octets 10..21, SHA-384 octets 18..29, SHA-1 octets 4..15.
// RFC 7401 Table 10's "truncated to 96 bits" names the same extraction. The
// tests check this reading against HITs written by an independent
// implementation (the cutehip captures, suites 1 and 2).
//
// For an undefined suite HITFromHI returns the zero array, which is never a
// valid ORCHID.
func HITFromHI(suite Suite, hi []byte) [16]byte {
	var hit [16]byte
	h := suite.NewHash()
	if h == nil {
		return hit
	}
	h.Write(hitContextID[:])
	h.Write(hi)
	var buf [64]byte
	sum := h.Sum(buf[:0])
	off := (len(sum) - 12) / 2 // the middle 96 bits, in octets
	copy(hit[:4], orchidPrefix[:])
	hit[3] |= uint8(suite) & 0x0f
	copy(hit[4:], sum[off:off+12])
	return hit
}
