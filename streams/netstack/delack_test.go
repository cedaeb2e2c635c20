package netstack

import (
	"io"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"hipnet.dev/handshake/wire"
)

// tcpSeg builds a TCP segment from port 1000 to port 2000 (or back, if
// in), with payload octets of data and the given options.
func tcpSeg(in bool, flags header.TCPFlags, seq, ack uint32, payload int, opts []byte) []byte {
	off := tcpMinHeaderLen + len(opts)
	b := make([]byte, off+payload)
	src, dst := uint16(1000), uint16(2000)
	if in {
		src, dst = dst, src
	}
	header.TCP(b).Encode(&header.TCPFields{
		SrcPort: src, DstPort: dst, SeqNum: seq, AckNum: ack,
		DataOffset: uint8(off), Flags: flags, WindowSize: 1000,
	})
	copy(b[tcpMinHeaderLen:], opts)
	return b
}

func otherPort(seg []byte) []byte {
	header.TCP(seg).SetSourcePort(1001)
	return seg
}

// sentLog records what the delayer sends on its timer.
type sentLog struct {
	mu   sync.Mutex
	segs [][]byte
	c    chan struct{}
}

func (l *sentLog) send(_ wire.HIT, seg []byte) {
	l.mu.Lock()
	l.segs = append(l.segs, append([]byte(nil), seg...))
	l.mu.Unlock()
	select {
	case l.c <- struct{}{}:
	default:
	}
}

func (l *sentLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.segs)
}

func newTestDelayer(delay time.Duration) (*ackDelayer, *sentLog) {
	l := &sentLog{c: make(chan struct{}, 1)}
	return newAckDelayer(delay, l.send), l
}

const ack = header.TCPFlagAck

// holdsAfter is one step of the tests below: d receives in from peer,
// then reports whether it holds out, our answer to it.
func holdsAfter(d *ackDelayer, peer wire.HIT, in, out []byte) bool {
	d.received(peer, in)
	hold, _ := d.outbound(peer, out)
	return hold
}

// TestAckDelayAnswerCarriesAck: the bare ACK of a one-octet request is
// held, and the answer, which acknowledges the same octet, replaces it:
// one segment instead of two.
func TestAckDelayAnswerCarriesAck(t *testing.T) {
	d, log := newTestDelayer(time.Hour)
	peer := testHIT(2)
	if !holdsAfter(d, peer, tcpSeg(true, ack|header.TCPFlagPsh, 100, 500, 1, nil), tcpSeg(false, ack, 500, 101, 0, nil)) {
		t.Fatal("the bare ACK of a one-octet request was not held")
	}
	if hold, prev := d.outbound(peer, tcpSeg(false, ack|header.TCPFlagPsh, 500, 101, 1, nil)); hold || prev != nil {
		t.Fatal("the answer was held, or the held ACK sent before it")
	}
	if d.held.Load() != 1 || d.saved.Load() != 1 || log.count() != 0 || d.active() {
		t.Fatalf("held %d saved %d sent %d active %v; want 1 1 0 false", d.held.Load(), d.saved.Load(), log.count(), d.active())
	}
}

// TestAckDelayTimer: a held ACK that nothing replaces leaves when the
// delay ends, unchanged.
func TestAckDelayTimer(t *testing.T) {
	d, log := newTestDelayer(5 * time.Millisecond)
	defer d.close()
	peer := testHIT(2)
	d.received(peer, tcpSeg(true, ack, 100, 500, 10, nil))
	a := tcpSeg(false, ack, 500, 110, 0, nil)
	t0 := time.Now()
	if hold, _ := d.outbound(peer, a); !hold {
		t.Fatal("not held")
	}
	select {
	case <-log.c:
	case <-time.After(5 * time.Second):
		t.Fatal("the held ACK was never sent")
	}
	if w := time.Since(t0); w < 5*time.Millisecond {
		t.Fatalf("sent after %v, before the delay", w)
	}
	if log.count() != 1 || string(log.segs[0]) != string(a) || d.active() {
		t.Fatalf("sent %d segments (%x), active %v", log.count(), log.segs, d.active())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.holding != 0 {
		t.Fatalf("%d held after the timer sent the only one", d.holding)
	}
}

// TestAckDelayOnlyExactAcks: only the ACK that acknowledges exactly the
// end of a small segment received is held. Duplicate ACKs, ACKs with
// SACK blocks, ACKs of full-sized segments, of a lone SYN, of an RST, and
// ACKs of flows the delayer has not seen leave at once.
func TestAckDelayOnlyExactAcks(t *testing.T) {
	peer := testHIT(2)
	sack := []byte{tcpOptNOP, tcpOptNOP, tcpOptSACK, 10, 0, 0, 0, 1, 0, 0, 0, 2}
	cases := []struct {
		name string
		in   []byte
		out  []byte
	}{
		{"duplicate ACK", tcpSeg(true, ack, 100, 500, 1, nil), tcpSeg(false, ack, 500, 100, 0, nil)},
		{"ACK beyond", tcpSeg(true, ack, 100, 500, 1, nil), tcpSeg(false, ack, 500, 200, 0, nil)},
		{"SACK blocks", tcpSeg(true, ack, 100, 500, 1, nil), tcpSeg(false, ack, 500, 101, 0, sack)},
		{"longer than small", tcpSeg(true, ack, 100, 500, smallSegment+1, nil), tcpSeg(false, ack, 500, 100+smallSegment+1, 0, nil)},
		{"SYN", tcpSeg(true, header.TCPFlagSyn, 100, 0, 0, nil), tcpSeg(false, ack, 500, 101, 0, nil)},
		{"RST", tcpSeg(true, header.TCPFlagRst|ack, 100, 500, 0, nil), tcpSeg(false, ack, 500, 100, 0, nil)},
		{"another flow", tcpSeg(true, ack, 100, 500, 1, nil), otherPort(tcpSeg(false, ack, 500, 101, 0, nil))},
		{"data, not a bare ACK", tcpSeg(true, ack, 100, 500, 1, nil), tcpSeg(false, ack, 500, 101, 1, nil)},
		{"FIN", tcpSeg(true, ack, 100, 500, 1, nil), tcpSeg(false, ack|header.TCPFlagFin, 500, 101, 0, nil)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, _ := newTestDelayer(time.Hour)
			d.received(peer, c.in)
			if hold, prev := d.outbound(peer, c.out); hold || prev != nil {
				t.Fatal("held")
			}
		})
	}
}

// TestAckDelayBulk: the short segment that ends a Write in a bulk
// transfer comes among full-sized ones, and its ACK, which acknowledges
// them too, is not held; once the flow has been quiet for bulkWindow, a
// request's ACK is held again.
func TestAckDelayBulk(t *testing.T) {
	d, _ := newTestDelayer(time.Hour)
	peer := testHIT(2)
	d.received(peer, tcpSeg(true, ack, 100, 500, 1400, nil))
	if holdsAfter(d, peer, tcpSeg(true, ack, 1500, 500, 300, nil), tcpSeg(false, ack, 500, 1800, 0, nil)) {
		t.Fatal("held the ACK of a bulk transfer's full-sized segments")
	}
	// The other order: a short segment, then a full-sized one, in one
	// batch: the ACK covers both.
	d.received(peer, tcpSeg(true, ack, 1800, 500, 300, nil))
	if holdsAfter(d, peer, tcpSeg(true, ack, 2100, 500, 1400, nil), tcpSeg(false, ack, 500, 3500, 0, nil)) {
		t.Fatal("held an ACK that covers a full-sized segment")
	}
	k := flowKey{peer, 1000, 2000}
	d.mu.Lock()
	f := d.flows[k]
	f.bulkAt = f.bulkAt.Add(-bulkWindow)
	d.flows[k] = f
	d.mu.Unlock()
	if !holdsAfter(d, peer, tcpSeg(true, ack, 3500, 500, 10, nil), tcpSeg(false, ack, 500, 3510, 0, nil)) {
		t.Fatal("a request after the bulk transfer: its ACK was not held")
	}
}

// TestAckDelayHandshake: a Dial's handshake ACK waits for the first data,
// which carries it; so does the ACK of a FIN for the peer's FIN.
func TestAckDelayHandshake(t *testing.T) {
	d, _ := newTestDelayer(time.Hour)
	peer := testHIT(2)
	if !holdsAfter(d, peer, tcpSeg(true, header.TCPFlagSyn|ack, 7000, 501, 0, nil), tcpSeg(false, ack, 501, 7001, 0, nil)) {
		t.Fatal("the handshake ACK was not held")
	}
	if hold, prev := d.outbound(peer, tcpSeg(false, ack|header.TCPFlagPsh, 501, 7001, 5, nil)); hold || prev != nil {
		t.Fatal("the first data did not carry the handshake ACK")
	}
	if !holdsAfter(d, peer, tcpSeg(true, header.TCPFlagFin|ack, 7001, 506, 0, nil), tcpSeg(false, ack, 506, 7002, 0, nil)) {
		t.Fatal("the ACK of a FIN was not held")
	}
	if hold, prev := d.outbound(peer, tcpSeg(false, header.TCPFlagFin|ack, 506, 7002, 0, nil)); hold || prev != nil {
		t.Fatal("our FIN did not carry the ACK of the peer's")
	}
}

// TestAckDelayFinalAck: after our FIN, the ACK of the peer's FIN is the
// connection's last segment, which nothing would carry: it leaves at
// once. A new connection on the same ports starts afresh.
func TestAckDelayFinalAck(t *testing.T) {
	d, _ := newTestDelayer(time.Hour)
	peer := testHIT(2)
	if hold, _ := d.outbound(peer, tcpSeg(false, header.TCPFlagFin|ack, 500, 100, 0, nil)); hold {
		t.Fatal("our FIN was held")
	}
	if holdsAfter(d, peer, tcpSeg(true, header.TCPFlagFin|ack, 100, 501, 0, nil), tcpSeg(false, ack, 501, 101, 0, nil)) {
		t.Fatal("the last ACK, of the peer's FIN after ours, was held")
	}

	d.outbound(peer, tcpSeg(false, header.TCPFlagSyn, 9000, 0, 0, nil))
	if !holdsAfter(d, peer, tcpSeg(true, header.TCPFlagSyn|ack, 3000, 9001, 0, nil), tcpSeg(false, ack, 9001, 3001, 0, nil)) {
		t.Fatal("a new connection on the ports of a closed one: its handshake ACK was not held")
	}
}

// TestAckDelaySecondAck: a second request before the answer is
// acknowledged at once, by one ACK for both (RFC 5681 §4.2); a second
// bare ACK of the same number (a window update, or a duplicate ACK that
// the peer must count) goes after the held one, which is not lost.
func TestAckDelaySecondAck(t *testing.T) {
	d, _ := newTestDelayer(time.Hour)
	peer := testHIT(2)
	d.received(peer, tcpSeg(true, ack, 100, 500, 1, nil))
	d.outbound(peer, tcpSeg(false, ack, 500, 101, 0, nil))
	d.received(peer, tcpSeg(true, ack, 101, 500, 1, nil))
	if hold, prev := d.outbound(peer, tcpSeg(false, ack, 500, 102, 0, nil)); hold || prev != nil || d.saved.Load() != 1 {
		t.Fatal("second ACK: held, or both sent")
	}

	d.received(peer, tcpSeg(true, ack, 102, 500, 1, nil))
	held := tcpSeg(false, ack, 500, 103, 0, nil)
	d.outbound(peer, held)
	hold, prev := d.outbound(peer, tcpSeg(false, ack, 500, 103, 0, nil))
	if hold {
		t.Fatal("a second bare ACK of the same number was held")
	}
	if prev == nil || string(prev.seg[:prev.n]) != string(held) {
		t.Fatalf("the held ACK was not sent first: %v", prev)
	}
}

// TestAckDelayBounded: a peer that sends small segments on more flows
// than the table holds gets the ACKs of the rest at once; the table does
// not grow, and close sends nothing.
func TestAckDelayBounded(t *testing.T) {
	d, log := newTestDelayer(time.Hour)
	peer := testHIT(2)
	for i := range maxAckFlows + 100 {
		s := tcpSeg(true, ack, 100, 500, 1, nil)
		header.TCP(s).SetSourcePort(uint16(i))
		d.received(peer, s)
	}
	if n := len(d.flows); n != maxAckFlows {
		t.Fatalf("table holds %d flows, bound %d", n, maxAckFlows)
	}
	d.close()
	if hold, _ := d.outbound(peer, tcpSeg(false, ack, 500, 101, 0, nil)); hold {
		t.Fatal("held after close")
	}
	d.received(peer, tcpSeg(true, ack, 100, 500, 1, nil))
	if d.active() || log.count() != 0 {
		t.Fatal("close left entries, or sent what it dropped")
	}
}

// TestAckDelayOff: a negative delay holds nothing.
func TestAckDelayOff(t *testing.T) {
	d, _ := newTestDelayer(-1)
	peer := testHIT(2)
	d.received(peer, tcpSeg(true, ack, 100, 500, 1, nil))
	if hold, _ := d.outbound(peer, tcpSeg(false, ack, 500, 101, 0, nil)); hold || d.active() {
		t.Fatal("held with the delay off")
	}
}

// TestAckDelayEcho: over a pair of Transports, a one-octet echo costs one
// segment each way with delayed ACKs, and two each way (data, bare ACK)
// without. A bulk transfer with an ACK delay of an hour finishes as fast
// as ever: no ACK is held, not even that of the short segment ending each
// Write, which also acknowledges the full-sized segments before it (only
// the first segment of the transfer may be, before the flow is known for
// bulk).
func TestAckDelayEcho(t *testing.T) {
	const rounds = 50
	for _, c := range []struct {
		name     string
		delay    time.Duration
		min, max int // segments sent by both ends per round
	}{{"delayed", time.Hour, 2, 2}, {"off", -1, 4, 4}} {
		t.Run(c.name, func(t *testing.T) {
			nodes := newNodes(t, newFakeNet(), 2, Config{AckDelay: c.delay})
			a, b := nodes[0], nodes[1]
			l, err := b.Listen(7)
			if err != nil {
				t.Fatal(err)
			}
			serveEcho(t, l)
			conn := dial(t, a.Transport, b.local, 7)
			ping := func() {
				var p [1]byte
				if _, err := conn.Write(p[:]); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(conn, p[:]); err != nil {
					t.Fatal(err)
				}
			}
			ping() // the handshake's segments are not counted
			sent := func() int { return int(a.Stats().SegmentsSent + b.Stats().SegmentsSent) }
			before := sent()
			for range rounds {
				ping()
			}
			// The last round's ACK may still be on its way (or held),
			// and the warm-up's may have left only after before was
			// read (the processor sends it after it wakes the reader).
			got := sent() - before
			if got < c.min*rounds-1 || got > c.max*rounds+1 {
				t.Fatalf("%d segments for %d one-octet echoes; want %d to %d per echo",
					got, rounds, c.min, c.max)
			}
			if c.delay > 0 && a.Stats().AcksSaved+b.Stats().AcksSaved < 2*rounds-1 {
				t.Fatalf("stats %+v %+v: the answers did not carry the held ACKs", a.Stats(), b.Stats())
			}
			// Close: each side's FIN carries the ACK the other held, and
			// the last ACK (of the server's FIN) is not held at all, so
			// that nothing is left for the hour-long delay.
			rcv := a.Stats().SegmentsReceived
			conn.Close()
			deadline := time.Now().Add(5 * time.Second)
			for a.Stats().SegmentsReceived == rcv { // the server's FIN
				if time.Now().After(deadline) {
					t.Fatal("the server did not close")
				}
				time.Sleep(time.Millisecond)
			}
			for a.ep.acks.active() || b.ep.acks.active() {
				if time.Now().After(deadline) {
					t.Fatalf("after Close, ACKs still held: client %v, server %v", a.ep.acks.active(), b.ep.acks.active())
				}
				time.Sleep(time.Millisecond)
			}
			// A held last ACK would be freed only by the server's FIN
			// retransmitted after its RTO (a second bare ACK of the same
			// number sends both).
			if r := a.Stats().Retransmits + b.Stats().Retransmits; r != 0 {
				t.Fatalf("%d retransmissions: an ACK was held that nothing carried", r)
			}
		})
	}
	t.Run("bulk", func(t *testing.T) {
		nodes := newNodes(t, newFakeNet(), 2, Config{AckDelay: time.Hour})
		transfer(t, nodes[0], nodes[1], 4<<20)
		// The last ACK may be held; so may one after each stall of
		// the sender longer than bulkWindow, which a busy machine makes
		// now and then (one run in 24 here held two): a flow that has
		// had no full-sized segment for that long is no longer in a
		// bulk transfer.
		if st := nodes[1].Stats(); st.AcksDelayed > 3 {
			t.Fatalf("the receiver of a bulk transfer held %d ACKs", st.AcksDelayed)
		}
	})
}

// TestAckDelayAllocs: a request's ACK held and carried by the answer, the
// path of every echo, allocates nothing.
func TestAckDelayAllocs(t *testing.T) {
	d, _ := newTestDelayer(time.Hour)
	defer d.close()
	peer := testHIT(2)
	req := tcpSeg(true, ack, 100, 500, 1, nil)
	bare := tcpSeg(false, ack, 500, 101, 0, nil)
	answer := tcpSeg(false, ack|header.TCPFlagPsh, 500, 101, 1, nil)
	round := func() {
		d.received(peer, req)
		if hold, _ := d.outbound(peer, bare); !hold {
			t.Fatal("not held")
		}
		if hold, prev := d.outbound(peer, answer); hold || prev != nil {
			t.Fatal("the answer did not carry the ACK")
		}
	}
	round() // the map and the timer
	if n := testing.AllocsPerRun(1000, round); n != 0 {
		t.Fatalf("%v allocations per echo", n)
	}
}

// FuzzAckDelay: no segment from the peer, however malformed, makes the
// delayer panic or hold anything but a bare ACK; its table stays within
// bounds and a held ACK is returned octet for octet.
func FuzzAckDelay(f *testing.F) {
	f.Add(tcpSeg(true, ack, 100, 500, 1, nil), tcpSeg(false, ack, 500, 101, 0, nil))
	f.Add(tcpSeg(true, header.TCPFlagSyn|ack, 7000, 501, 0, nil), tcpSeg(false, ack, 501, 7001, 0, nil))
	f.Add(tcpSeg(true, header.TCPFlagFin|ack, 100, 500, 0, []byte{5, 10, 0, 0}), tcpSeg(false, ack, 500, 101, 0, []byte{1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2}))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0x10, 0, 0, 0, 0, 0, 0}, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x10})
	f.Fuzz(func(t *testing.T, in, out []byte) {
		d, _ := newTestDelayer(time.Hour)
		defer d.close()
		peer := testHIT(2)
		d.received(peer, in)
		orig := append([]byte(nil), out...)
		hold, prev := d.outbound(peer, out)
		if hold {
			if len(out) < tcpMinHeaderLen || header.TCP(out).Flags() != ack || len(out) != int(header.TCP(out).DataOffset()) {
				t.Fatalf("held a segment that is not a bare ACK: %x", out)
			}
			// A second, different segment of the flow releases or
			// supersedes it; a copy that comes back must be the original.
			next := append([]byte(nil), out...)
			header.TCP(next).SetFlags(uint8(header.TCPFlagRst))
			if _, p := d.outbound(peer, next); p == nil || string(p.seg[:p.n]) != string(orig) {
				t.Fatalf("the held ACK did not come back whole before an RST")
			}
		} else if prev != nil {
			t.Fatal("a held ACK came back, none was held")
		}
		if len(d.flows) > maxAckFlows || d.live < 0 || d.live > len(d.flows) || d.holding < 0 || d.holding > d.live {
			t.Fatalf("table %d flows, %d live, %d holding", len(d.flows), d.live, d.holding)
		}
	})
}

// TestAckDelayForgetsReset: data for a connection we answer with an RST
// (no connection on that port; the RST carries no ACK when the segment
// had one) leaves no live entry behind, which would put every outbound
// packet of every connection on the delayer's slow path.
func TestAckDelayForgetsReset(t *testing.T) {
	d, _ := newTestDelayer(time.Hour)
	peer := testHIT(2)
	d.received(peer, tcpSeg(true, ack|header.TCPFlagPsh, 100, 500, 10, nil))
	if !d.active() {
		t.Fatal("test premise: the data left nothing to acknowledge")
	}
	if hold, prev := d.outbound(peer, tcpSeg(false, header.TCPFlagRst, 500, 0, 0, nil)); hold || prev != nil {
		t.Fatal("the RST was held, or sent after a held ACK")
	}
	if d.active() {
		t.Fatal("a live entry is left after the RST")
	}
}
