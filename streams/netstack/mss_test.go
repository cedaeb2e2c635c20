package netstack

import (
	"encoding/binary"
	"sync"
	"testing"

	"hipnet.dev/handshake/wire"
)

// largestTap records the longest segment a link writes to each peer.
type largestTap struct {
	mu  sync.Mutex
	max map[wire.HIT]int
}

func tapLargest(l *fakeLink) *largestTap {
	t := &largestTap{max: make(map[wire.HIT]int)}
	l.setTap(func(dst wire.HIT, seg []byte) bool {
		t.mu.Lock()
		t.max[dst] = max(t.max[dst], len(seg))
		t.mu.Unlock()
		return true
	})
	return t
}

func (t *largestTap) of(h wire.HIT) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.max[h]
}

// TestSegmentsFollowPath: one node's connections to two peers take
// segments as long as each path carries (the MSS each SYN announces is
// clamped on the way out), and no longer; a bulk transfer fills them.
func TestSegmentsFollowPath(t *testing.T) {
	nodes := newNodes(t, newFakeNet(), 3, Config{})
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.link.setPath(b.local, 9000)
	b.link.setPath(a.local, 9000)
	a.link.setPath(c.local, 1400)
	c.link.setPath(a.local, 1400)
	ta, tc := tapLargest(a.link), tapLargest(c.link)
	transfer(t, a, b, 4<<20)
	transfer(t, a, c, 4<<20)
	transfer(t, c, a, 4<<20)
	for _, x := range []struct {
		name      string
		got, path int
	}{
		{"a to b", ta.of(b.local), 9000},
		{"a to c", ta.of(c.local), 1400},
		{"c to a", tc.of(a.local), 1400},
	} {
		if x.got > x.path || x.got < x.path-100 {
			t.Errorf("%s: largest segment %d octets; the path carries %d", x.name, x.got, x.path)
		}
	}
}

// TestInboundSYNClamped: a peer that announces more than our path to it
// carries (its MTU is fixed at 9000 and it knows nothing of paths) gets
// segments no longer than the path: its SYN's MSS is clamped on the way
// in.
func TestInboundSYNClamped(t *testing.T) {
	n := newFakeNet()
	a := newNodes(t, n, 1, Config{})[0]
	lb := n.add(testHIT(2))
	tb, err := New(lb, Config{MTU: 9000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	b := node{Transport: tb, link: lb}
	a.link.setPath(b.local, 1400)
	ta := tapLargest(a.link)
	transfer(t, b, a, 64<<10) // b dials: a answers b's SYN
	transfer(t, a, b, 4<<20)
	if got := ta.of(b.local); got > 1400 || got < 1300 {
		t.Fatalf("largest segment to b: %d octets; the path carries 1400", got)
	}
}

// synWithOptions is a SYN from src to dst carrying opts, its checksum
// right.
func synWithOptions(src, dst wire.HIT, opts []byte) []byte {
	seg := make([]byte, tcpMinHeaderLen+len(opts))
	binary.BigEndian.PutUint16(seg[0:], 40000)
	binary.BigEndian.PutUint16(seg[2:], 80)
	seg[12] = byte(len(seg)/4) << 4
	seg[13] = tcpFlagSYN
	copy(seg[tcpMinHeaderLen:], opts)
	putTCPChecksum(seg, src, dst)
	return seg
}

func TestClampMSS(t *testing.T) {
	src, dst := testHIT(1), testHIT(2)
	mss := func(v uint16) []byte { return []byte{tcpOptMSS, tcpOptMSSLen, byte(v >> 8), byte(v)} }
	cases := []struct {
		name    string
		opts    []byte
		clamped bool
		at      int // offset of the MSS value in the options
	}{
		{"mss first", append(mss(65475), 4, 2, 1, 3, 3, 7, 0, 0), true, 2},
		{"after nops and sack-permitted", append([]byte{1, 1, 4, 2}, mss(65475)...), true, 6},
		{"odd offset", append([]byte{1}, append(mss(9000), 1, 1, 1)...), true, 3},
		{"already small", mss(1200), false, 2},
		{"end before mss", append([]byte{0, 0, 0, 0}, mss(65475)...), false, 6},
		{"zero-length option", append([]byte{8, 0, 0, 0}, mss(65475)...), false, 6},
		{"option past the header", []byte{8, 12, 0, 0}, false, -1},
		{"mss of the wrong length", []byte{tcpOptMSS, 3, 0xff, 0}, false, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seg := synWithOptions(src, dst, tc.opts)
			before := append([]byte(nil), seg...)
			e := &endpoint{link: &fakeLink{}, fallbackMSS: 1400}
			e.clampSYN(seg, src, dst, dst)
			if checksum(src, dst, seg) != 0xffff {
				t.Fatal("checksum wrong after clamping")
			}
			if !tc.clamped {
				if string(seg) != string(before) {
					t.Fatal("segment changed")
				}
				return
			}
			if got := binary.BigEndian.Uint16(seg[tcpMinHeaderLen+tc.at:]); got != 1400 {
				t.Fatalf("MSS %d; want 1400", got)
			}
		})
	}
	ack := synWithOptions(src, dst, mss(65475))
	ack[13] = 0x10 // ACK, not SYN: options other than on a SYN are not ours to touch
	before := string(ack)
	(&endpoint{link: &fakeLink{}, fallbackMSS: 1400}).clampSYN(ack, src, dst, dst)
	if string(ack) != before {
		t.Fatal("a segment without SYN changed")
	}
}

// FuzzClampMSS: any segment from the network, clamped or not, keeps its
// length and its octets outside an MSS option, and a clamped one
// announces exactly the path's MSS.
func FuzzClampMSS(f *testing.F) {
	f.Add(synWithOptions(testHIT(1), testHIT(2), []byte{2, 4, 0xff, 0xd3, 4, 2, 1, 3, 3, 7, 0, 0}))
	f.Add(synWithOptions(testHIT(1), testHIT(2), []byte{1, 2, 4, 0x23, 0x28, 1, 1, 1}))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 2, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, seg []byte) {
		if len(seg) < tcpMinHeaderLen {
			return
		}
		before := append([]byte(nil), seg...)
		if !clampMSS(seg, 1300) {
			if string(seg) != string(before) {
				t.Fatal("unclamped segment changed")
			}
			return
		}
		diff := 0
		for i := range seg {
			if seg[i] != before[i] {
				diff++
				if i < tcpMinHeaderLen+2 {
					t.Fatalf("octet %d of the fixed header changed", i)
				}
			}
		}
		if diff > 2 {
			t.Fatalf("%d octets changed", diff)
		}
	})
}
