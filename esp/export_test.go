package esp

import "unsafe"

// Hooks for the external tests: move the counters to the 2^32 and 2^64
// boundaries without sealing billions of packets.

func (o *Outbound) SetSeqForTest(s uint64)    { o.setSeq(s) }
func (i *Inbound) SetHighestForTest(t uint64) { i.setHighest(t) }

// HITChecksumForTest is the Internet checksum of seg under the HIT
// pseudo-header with next header proto.
func HITChecksumForTest(src, dst [16]byte, proto uint8, seg []byte) uint16 {
	return ^fold(hitSum(src, dst, proto, seg))
}

// TransformSizeForTest is the size of one SA direction's keyed state.
func TransformSizeForTest() uintptr { return unsafe.Sizeof(transform{}) }

// KeyedForTest reports whether the SA has a keyed scratch pool of its own.
func (o *Outbound) KeyedForTest() bool { return o.t.keyed != nil }
func (i *Inbound) KeyedForTest() bool  { return i.t.keyed != nil }
