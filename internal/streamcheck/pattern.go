package streamcheck

// Pattern fills b with the octets at offsets off, off+1, … of the stream
// a Checker writes. Octet i is octet i%8 of a 64-bit mix (SplitMix64's
// finaliser) of i/8: it depends on its offset alone, so that any octet
// out of place differs from what was expected there, with a probability
// of 255/256.
func Pattern(b []byte, off int64) {
	o := uint64(off)
	w := mix(o >> 3)
	for i := range b {
		if o&7 == 0 && i > 0 {
			w = mix(o >> 3)
		}
		b[i] = byte(w >> (8 * (o & 7)))
		o++
	}
}

// mix is SplitMix64's output function of x.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
