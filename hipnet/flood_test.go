package hipnet

import (
	"context"
	"encoding/binary"
	"hash"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/mitm"
)

// Floods on loopback, bounded in count and time: what a node sends back
// to a flooder (RFC 7401 §6.7, §9: an R1 is several times the size of an
// I1, so a Responder that answers every I1 is a reflector), and whether
// honest nodes still get through while I1s and I2s pour in from many
// addresses (§4.1.1, §6.9: state only after a solved puzzle, work priced
// by the puzzle). Figures are logged as "FIGURE ..." lines.

// randomHIT returns a random ORCHIDv2 HIT (2001:20::/28) of the
// ECDSA/SHA-384 suite: a sender no Responder has heard of.
func randomHIT(r *rand.Rand) wire.HIT {
	var h wire.HIT
	binary.BigEndian.PutUint64(h[:8], r.Uint64())
	binary.BigEndian.PutUint64(h[8:], r.Uint64())
	h[0], h[1], h[2], h[3] = 0x20, 0x01, 0x00, 0x20|uint8(hostid.SuiteECDSASHA384)
	return h
}

// withSender returns a copy of the HIP packet over UDP b with another
// sender HIT. An I1 is neither signed nor checksummed over UDP, so the
// copy is as valid as b.
func withSender(b []byte, h wire.HIT) []byte {
	c := append([]byte(nil), b...)
	copy(c[wire.NonESPMarkerLen+8:], h[:])
	return c
}

// minimalI1 is the smallest I1 a Responder answers: the header and a
// DH_GROUP_LIST (RFC 7401 §5.3.1).
func minimalI1(t testing.TB, to wire.HIT) []byte {
	return buildHIP(t, wire.I1, randomHIT(rand.New(rand.NewPCG(1, 2))), to,
		wire.DHGroupList{Groups: []uint8{wire.DHGroupP256, wire.DHGroupP384, wire.DHGroupMODP1536}})
}

// sender is a flood's source: a mitm.Socket, or a sendOnly.
type sender interface {
	Send(dst netip.AddrPort, b []byte) error
}

// sendOnly is a source socket whose answers nobody reads (the kernel
// drops them once its buffer is full): a spoofed source, as far as the
// flooder cares.
type sendOnly struct{ c *net.UDPConn }

func (s sendOnly) Send(dst netip.AddrPort, b []byte) error {
	_, err := s.c.WriteToUDPAddrPort(b, dst)
	return err
}

// spoofedSources opens ports send-only sockets on each of n loopback
// addresses 127.0.subnet.1...: an attacker that varies source port as well
// as address, as a spoofing one can.
func spoofedSources(t testing.TB, subnet byte, n, ports int) []sender {
	t.Helper()
	var out []sender
	for i := range n {
		for range ports {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, subnet, byte(1+i))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			out = append(out, sendOnly{c})
		}
	}
	return out
}

// pace sends n datagrams made by mk, round-robin over socks, to dst at
// rate a second; it stops after n, at deadline, or when stop closes, and
// returns how many it sent.
func pace[S sender](socks []S, dst netip.AddrPort, n, rate int, deadline time.Time, stop <-chan struct{}, mk func(i int) []byte) int {
	start := time.Now()
	sent := 0
	for sent < n && time.Now().Before(deadline) {
		select {
		case <-stop:
			return sent
		default:
		}
		due := min(n, int(time.Since(start).Seconds()*float64(rate))+1)
		for ; sent < due; sent++ {
			if b := mk(sent); b != nil {
				socks[sent%len(socks)].Send(dst, b)
			}
		}
		time.Sleep(time.Millisecond)
	}
	return sent
}

// floodSockets opens n sockets on n loopback addresses 127.0.subnet.1...
func floodSockets(t testing.TB, subnet byte, n int) []*mitm.Socket {
	t.Helper()
	socks := make([]*mitm.Socket, n)
	for i := range socks {
		s, err := mitm.Listen(netip.AddrFrom4([4]byte{127, 0, subnet, byte(1 + i)}))
		if err != nil {
			t.Fatal(err)
		}
		s.SetRecord(false)
		_ = s.SetReadBuffer(4 << 20)
		t.Cleanup(func() { s.Close() })
		socks[i] = s
	}
	return socks
}

// TestFloodI1Amplification: 20 000 I1s in about two seconds from one UDP
// socket, half as small as an I1 can be and half in the form honest nodes
// send, each from a new random HIT. The Responder must send back fewer
// octets than it received from that address (RFC 7401 §6.7: "An R1 packet
// sender MUST have a mechanism to rate-limit R1 packets sent to an
// address"; §9: the R1/I1 size asymmetry makes a reflector), while an
// honest node dialling meanwhile, from elsewhere, still gets its R1 and
// completes.
func TestFloodI1Amplification(t *testing.T) {
	b := newTestNode(t, Config{})
	echoServer(t, b, echoPort)

	// An honest I1 as a node sends it, taken from the wire.
	proxy := newMITM(t, b)
	h0 := newTestNode(t, viaProxy(b, proxy))
	if err := h0.stack.Connect(ctxT(t, 10*time.Second), b.HIT()); err != nil {
		t.Fatal(err)
	}
	i1s := hipRecorded(proxy, mitm.ToTarget, wire.I1)
	if len(i1s) == 0 {
		t.Fatal("no I1 recorded")
	}
	kinds := []struct {
		name string
		i1   []byte
		from netip.Addr
	}{
		{"minimal", minimalI1(t, b.HIT()), thirdAddr},
		{"honest-form", i1s[0].Data, fourthAddr},
	}
	const perKind = 10000
	mine := map[HIT]bool{h0.HIT(): true}
	for _, k := range kinds {
		s, err := mitm.Listen(k.from)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		s.SetRecord(false)
		_ = s.SetReadBuffer(4 << 20)
		honest := newTestNode(t, Config{Peers: map[HIT][]netip.AddrPort{b.HIT(): {b.LocalAddr()}}})
		mine[honest.HIT()] = true
		bBefore, hBefore := b.Stats(), honest.Stats()

		stop := make(chan struct{})
		var wg sync.WaitGroup
		var dialErr error
		var dialTook time.Duration
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(300 * time.Millisecond) // into the flood
			start := time.Now()
			c, err := honest.DialContext(ctxT(t, 15*time.Second), "tcp", addrOf(b, echoPort))
			dialTook, dialErr = time.Since(start), err
			if err == nil {
				dialErr = pingPong(c)
				c.Close()
			}
		}()
		r := rand.New(rand.NewPCG(uint64(len(k.i1)), 7))
		n := pace([]*mitm.Socket{s}, b.LocalAddr(), perKind, perKind, time.Now().Add(5*time.Second), stop,
			func(int) []byte { return withSender(k.i1, randomHIT(r)) })
		close(stop)
		wg.Wait()
		time.Sleep(300 * time.Millisecond) // the last answers
		sent, in := s.Counts()
		bAfter, hAfter := b.Stats(), honest.Stats()
		// What B sent meanwhile, less what the honest node received: B's
		// own count of what went to the flooder, should the socket have
		// lost some of it.
		toFlooder := int64(bAfter.BytesOut-bBefore.BytesOut) - int64(hAfter.BytesIn-hBefore.BytesIn)
		out := max(int64(in.Octets), toFlooder)
		factor := float64(out) / float64(sent.Octets)
		t.Logf("FIGURE amplification kind=%s i1_size=%d i1_sent=%d octets_in=%d answers=%d octets_out=%d node_octets_out=%d factor=%.4f honest_dial=%v",
			k.name, len(k.i1), n, sent.Octets, in.Datagrams, in.Octets, toFlooder, factor, dialTook.Round(time.Millisecond))
		if n < perKind {
			t.Errorf("%s: only %d of %d I1s sent", k.name, n, perKind)
		}
		if factor >= 1.0 {
			t.Errorf("%s: the Responder answered %d octets to %d octets of I1s from one address: amplification %.2f, want < 1",
				k.name, out, sent.Octets, factor)
		}
		if dialErr != nil {
			t.Errorf("%s: an honest node dialling during the flood: %v", k.name, dialErr)
		}
		for _, p := range b.Peers() {
			if !mine[p.HIT] {
				t.Errorf("%s: B holds state for a flood HIT: %+v", k.name, p)
			}
		}
	}
}

// r1Info is what an R1 tells a flooder that wants to solve its puzzle.
type r1Info struct {
	counter wire.Param // R1_COUNTER, echoed in I2
	k       uint8
	opaque  [2]byte
	i       []byte
}

// solveFloodPuzzle finds #J with RHASH(#I | HIT-I | HIT-R | #J) ending in #K
// zero bits (RFC 7401 §4.1.2), as an Initiator must.
func solveFloodPuzzle(h hash.Hash, i []byte, hitI, hitR wire.HIT, k int, r *rand.Rand, maxTries int) ([]byte, bool) {
	j := make([]byte, len(i))
	for n := range j {
		j[n] = byte(r.Uint32())
	}
	var sum []byte
	for try := 0; try < maxTries; try++ {
		binary.BigEndian.PutUint64(j[len(j)-8:], r.Uint64())
		h.Reset()
		h.Write(i)
		h.Write(hitI[:])
		h.Write(hitR[:])
		h.Write(j)
		sum = h.Sum(sum[:0])
		if lowZero(sum, k) {
			return j, true
		}
	}
	return nil, false
}

func lowZero(d []byte, k int) bool {
	for n := len(d) - 1; k > 0; n-- {
		m := byte(0xff)
		if k < 8 {
			m = byte(1<<k) - 1
		}
		if d[n]&m != 0 {
			return false
		}
		k -= 8
	}
	return true
}

// solvedI2s is the flooder of I2s with valid puzzle solutions: for a pool
// of real identities (so that HOST_ID matches the sender HIT) it asks for
// R1s, solves their puzzles afresh for every I2 and sends I2s whose
// HIP_MAC and HIP_SIGNATURE are random, copying the rest from a genuine
// I2. Each costs the Responder its Diffie-Hellman and KEYMAT work before
// the MAC fails: the attack the puzzle prices (RFC 7401 §4.1.1, §9).
type solvedI2s struct {
	b        *Node
	template wire.Packet
	ids      []*Identity
	i1s      [][]byte // an I1 from each identity
	socks    []*mitm.Socket

	mu      sync.Mutex
	r1s     map[wire.HIT]r1Info
	tooHard atomic.Int64 // puzzles above maxFloodK, skipped
	maxK    atomic.Int32
}

// maxFloodK bounds the puzzles the flooder solves: beyond it one I2 costs
// the flooder more CPU than the test can spare.
const maxFloodK = 18

func newSolvedI2s(t testing.TB, b *Node, template []byte, socks []*mitm.Socket, n int) *solvedI2s {
	pkt, ok := hipOf(template)
	if !ok {
		t.Fatal("template I2 does not parse")
	}
	f := &solvedI2s{b: b, template: pkt, socks: socks, r1s: map[wire.HIT]r1Info{}}
	for range n {
		id, err := GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		f.ids = append(f.ids, id)
		f.i1s = append(f.i1s, buildHIP(t, wire.I1, id.HIT(), b.HIT(),
			wire.DHGroupList{Groups: []uint8{wire.DHGroupP256, wire.DHGroupP384, wire.DHGroupMODP1536}}))
	}
	for _, s := range socks {
		s.SetHandler(f.onR1)
	}
	return f
}

func (f *solvedI2s) onR1(d mitm.Datagram) {
	pkt, ok := hipOf(d.Data)
	if !ok || pkt.Type() != wire.R1 {
		return
	}
	pz, ok := pkt.Param(wire.ParamPuzzle)
	if !ok {
		return
	}
	p, err := wire.ParsePuzzle(pz.Contents())
	if err != nil {
		return
	}
	ctr, _ := pkt.Param(wire.ParamR1Counter)
	f.mu.Lock()
	f.r1s[pkt.ReceiverHIT()] = r1Info{counter: ctr, k: p.K, opaque: p.Opaque, i: append([]byte(nil), p.I...)}
	f.mu.Unlock()
	for k := f.maxK.Load(); int32(p.K) > k && !f.maxK.CompareAndSwap(k, int32(p.K)); k = f.maxK.Load() {
	}
}

// askR1s sends an I1 for every identity of the pool.
func (f *solvedI2s) askR1s() {
	for i, i1 := range f.i1s {
		f.socks[i%len(f.socks)].Send(f.b.LocalAddr(), i1)
	}
}

// next builds one I2 for identity i, or nil if its R1 is unknown or too
// hard.
func (f *solvedI2s) next(i int, h hash.Hash, r *rand.Rand) []byte {
	id := f.ids[i%len(f.ids)]
	f.mu.Lock()
	info, ok := f.r1s[id.HIT()]
	f.mu.Unlock()
	if !ok {
		return nil
	}
	if info.k > maxFloodK {
		f.tooHard.Add(1)
		return nil
	}
	j, ok := solveFloodPuzzle(h, info.i, id.HIT(), f.b.HIT(), int(info.k), r, 1<<(info.k+5))
	if !ok {
		return nil
	}
	nb := wire.NewBuilder(nil, wire.I2, id.HIT(), f.b.HIT())
	pub := id.key.Public()
	it := f.template.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		switch q.Type() {
		case wire.ParamR1Counter:
			if info.counter.TLV() != nil {
				nb.AddParam(info.counter)
			}
		case wire.ParamSolution:
			nb.Add(wire.Solution{K: info.k, Opaque: info.opaque, I: info.i, J: j})
		case wire.ParamHostID:
			nb.Add(wire.HostID{Algorithm: uint16(pub.Algorithm()), HI: pub.HI()})
		case wire.ParamHIPMAC, wire.ParamHIPSignature:
			nb.AddRaw(q.Type(), randBytes(len(q.Contents())))
		default: // ESP_INFO, DIFFIE_HELLMAN (a valid point), HIP_CIPHER, lists
			nb.AddParam(q)
		}
	}
	raw, err := nb.Bytes()
	if err != nil {
		return nil
	}
	return wire.AppendUDPControl(nil, raw)
}

// floodWarmup is how long each flood runs before the honest nodes dial.
const floodWarmup = 1500 * time.Millisecond

// floodKind is one flood of TestFloodManyAddressesWhileHonestDial.
type floodKind struct {
	name string
	run  func(stop <-chan struct{}, deadline time.Time) int // sends until stop or deadline; returns how many
}

// TestFloodManyAddressesWhileHonestDial: 20 fresh honest nodes dial the
// Responder at once, first unloaded and then under each flood in turn —
// I1s from many addresses with random HITs; I2s with a wrong puzzle
// solution; a captured valid I2 replayed; I2s with freshly solved puzzles
// and a bogus HIP_MAC, which cost the Responder its Diffie-Hellman; and
// all of them together. Required: at least 19 of 20 dials complete under
// each flood, with a median dial time within 10× the unloaded one
// measured first in the same run; the Responder holds state for no flood
// HIT (RFC 7401 §6.7: "the HIP state machine does not transition upon
// sending an R1"; §4.1.1: state only after a solved puzzle and an
// authenticated I2); the replayed I2 replaced nothing.
func TestFloodManyAddressesWhileHonestDial(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20-second flood")
	}
	if raceBuild() {
		t.Skip("timing figures mean nothing under the race detector")
	}
	b := newTestNode(t, Config{})
	echoServer(t, b, echoPort)

	// X, whose genuine I2 is replayed and serves as the template of the
	// forged ones; an ESTABLISHED association on B.
	proxy := newMITM(t, b)
	x := newTestNode(t, viaProxy(b, proxy))
	if _, err := x.Ping(ctxT(t, 10*time.Second), b.HIT(), 1, 64, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	i2s := hipRecorded(proxy, mitm.ToTarget, wire.I2)
	if len(i2s) == 0 {
		t.Fatal("no I2 recorded")
	}
	xI2 := i2s[0].Data
	var xView PeerInfo
	if !waitUntil(5*time.Second, func() bool { var ok bool; xView, ok = peerOf(b, x.HIT()); return ok && xView.State == "ESTABLISHED" }) {
		t.Fatalf("B's association with X: %+v", xView)
	}
	sol, _ := spanOf(paramSpans(xI2), wire.ParamSolution)

	// The flooders, each kind on addresses of its own (127.0.N.x).
	const (
		i1Rate     = 5000 // I1s a second, from i1Addrs addresses
		i1Addrs    = 100
		spoofAddrs = 64 // and spoofPorts ports each, for I1s at i1Rate
		spoofPorts = 16
		i2Rate     = 3000 // wrong-puzzle and replayed I2s a second, each kind
		i2Addrs    = 50
		solvedRate = 2000 // at most, solved I2s a second
		solvedIDs  = 64
	)
	i1Socks := floodSockets(t, 10, i1Addrs)
	spoofed := spoofedSources(t, 14, spoofAddrs, spoofPorts)
	garbageSocks := floodSockets(t, 11, i2Addrs)
	replaySocks := floodSockets(t, 12, i2Addrs)
	solvedSocks := floodSockets(t, 13, 16)
	solved := newSolvedI2s(t, b, xI2, solvedSocks, solvedIDs)
	i1 := minimalI1(t, b.HIT())
	dst := b.LocalAddr()

	var floodHITs sync.Map // every sender HIT a flooder used
	i1Flood := func(stop <-chan struct{}, deadline time.Time) int {
		r := rand.New(rand.NewPCG(11, 12))
		return pace(i1Socks, dst, i1Rate*30, i1Rate, deadline, stop, func(int) []byte {
			h := randomHIT(r)
			floodHITs.Store(h, true)
			return withSender(i1, h)
		})
	}
	spoofedI1Flood := func(stop <-chan struct{}, deadline time.Time) int {
		r := rand.New(rand.NewPCG(17, 18))
		return pace(spoofed, dst, i1Rate*30, i1Rate, deadline, stop, func(int) []byte {
			h := randomHIT(r)
			floodHITs.Store(h, true)
			return withSender(i1, h)
		})
	}
	garbageFlood := func(stop <-chan struct{}, deadline time.Time) int {
		r := rand.New(rand.NewPCG(13, 14))
		return pace(garbageSocks, dst, i2Rate*30, i2Rate, deadline, stop, func(int) []byte {
			c := append([]byte(nil), xI2...)
			j := c[sol.contentEnd-(sol.contentEnd-sol.start-8)/2 : sol.contentEnd] // #J, the second half
			for n := range j {
				j[n] = byte(r.Uint32())
			}
			return c
		})
	}
	replayFlood := func(stop <-chan struct{}, deadline time.Time) int {
		return pace(replaySocks, dst, i2Rate*30, i2Rate, deadline, stop, func(int) []byte { return xI2 })
	}
	solvedFlood := func(stop <-chan struct{}, deadline time.Time) int {
		for _, id := range solved.ids {
			floodHITs.Store(id.HIT(), true)
		}
		h := hostid.Suite(b.HIT().OGA()).NewHash()
		r := rand.New(rand.NewPCG(15, 16))
		refresh := time.Now()
		solved.askR1s()
		var busy time.Duration
		start := time.Now()
		n := pace(solvedSocks, dst, solvedRate*30, solvedRate, deadline, stop, func(i int) []byte {
			if time.Since(refresh) > 500*time.Millisecond {
				solved.askR1s() // R1s follow #K
				refresh = time.Now()
			}
			// The flooder's CPU is the test's too: solving at most a third
			// of the time leaves the honest nodes theirs.
			if busy > time.Since(start)/3 {
				return nil
			}
			t0 := time.Now()
			i2 := solved.next(i, h, r)
			busy += time.Since(t0)
			return i2
		})
		return n
	}
	kinds := []floodKind{
		{"i1", i1Flood},
		{"i1-spoofed-ports", spoofedI1Flood},
		{"i2-wrong-puzzle", garbageFlood},
		{"i2-replayed", replayFlood},
		{"i2-solved-bad-mac", solvedFlood},
		{"all", func(stop <-chan struct{}, deadline time.Time) int {
			var wg sync.WaitGroup
			var n atomic.Int64
			for _, f := range []func(<-chan struct{}, time.Time) int{i1Flood, spoofedI1Flood, garbageFlood, replayFlood, solvedFlood} {
				wg.Add(1)
				go func() { defer wg.Done(); n.Add(int64(f(stop, deadline))) }()
			}
			wg.Wait()
			return int(n.Load())
		}},
	}

	honest := map[HIT]bool{x.HIT(): true}
	dialWave(t, b, honest) // warm-up: the first wave pays one-time costs
	unloaded := dialWave(t, b, honest)
	p50u := medianDur(unloaded.times)
	t.Logf("FIGURE flood kind=none completed=%d/20 p50=%v", len(unloaded.times), p50u.Round(time.Microsecond))
	if len(unloaded.times) < 19 {
		t.Fatalf("unloaded: only %d of 20 dials completed: %v", len(unloaded.times), unloaded.errs)
	}

	// Calibration, not asserted: the same wave against a Responder whose
	// puzzle is at the load's ceiling (#K 16) without any flood. The 20
	// honest nodes share this machine's cores, so this is what solving
	// alone costs them here, to tell it apart from the Responder's delays.
	{
		bk := newTunedNode(t, Config{}, handshake.Config{PuzzleDifficulty: 16})
		echoServer(t, bk, echoPort)
		w := dialWave(t, bk, map[HIT]bool{})
		t.Logf("FIGURE flood kind=none-puzzle-k16 completed=%d/20 p50=%v ratio=%.1f (calibration)",
			len(w.times), medianDur(w.times).Round(time.Microsecond), float64(medianDur(w.times))/float64(p50u))
		bk.Close()
	}

	for _, k := range kinds {
		before := b.Stats()
		stop := make(chan struct{})
		var sent atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			sent.Store(int64(k.run(stop, time.Now().Add(20*time.Second))))
		}()
		tl := sampleK(b) // #K over time: the flood's start ...
		// Long enough for the flood to drain the Responder's R1 budgets
		// and to raise its puzzle difficulty: the steady state.
		time.Sleep(floodWarmup)
		w := dialWave(t, b, honest)
		close(stop)
		<-done
		after := b.Stats()
		p50 := medianDur(w.times)
		ratio := float64(p50) / float64(p50u)
		t.Logf("FIGURE flood kind=%s completed=%d/20 p50_loaded=%v p50_unloaded=%v ratio=%.1f flood_datagrams=%d wave_took=%v b_packets_in=%d b_packets_out=%d max_puzzle_k_seen=%d solved_too_hard=%d",
			k.name, len(w.times), p50.Round(time.Microsecond), p50u.Round(time.Microsecond), ratio, sent.Load(), w.took.Round(time.Millisecond),
			after.PacketsIn-before.PacketsIn, after.PacketsOut-before.PacketsOut, solved.maxK.Load(), solved.tooHard.Load())
		if len(w.times) < 19 {
			t.Errorf("%s: %d of 20 honest dials completed: %v", k.name, len(w.times), w.errs)
		}
		if len(w.times) > 0 && ratio > 10 {
			t.Errorf("%s: median dial %v under the flood, %.1f× the unloaded %v (want at most 10×)", k.name, p50, ratio, p50u)
		}
		if d := after.Drops.ControlBacklog - before.Drops.ControlBacklog; d > 0 {
			t.Logf("%s: B's read loop dropped %d control packets (backlog)", k.name, d)
		}
		// ... and its end: #K goes back to its base once the flood is over.
		back := waitUntil(15*time.Second, func() bool { return b.Stats().BEX.PuzzleDifficulty <= baseK })
		for _, s := range tl.stop() {
			t.Logf("FIGURE puzzle-k flood=%s t=%v k=%d", k.name, s.at.Round(10*time.Millisecond), s.k)
		}
		if k.name == "i2-solved-bad-mac" && tl.max() <= baseK {
			t.Errorf("%s: #K never rose above %d under a flood of solved I2s", k.name, baseK)
		}
		if !back {
			t.Errorf("%s: #K still %d 15 s after the flood stopped", k.name, b.Stats().BEX.PuzzleDifficulty)
		}
	}

	// No state for the flood: every association is an honest node's.
	for _, p := range b.Peers() {
		if !honest[p.HIT] {
			_, flood := floodHITs.Load(p.HIT)
			t.Errorf("B holds an association with a HIT that is not an honest node's (flood HIT: %v): %+v", flood, p)
		}
	}
	if p, ok := peerOf(b, x.HIT()); !ok || p.State != "ESTABLISHED" || p.InSPI != xView.InSPI || p.OutSPI != xView.OutSPI {
		t.Errorf("the replayed I2 changed X's association:\nnow %+v\nwas %+v", p, xView)
	}
}

// kSample is the Responder's #K at a time since the flood started.
type kSample struct {
	at time.Duration
	k  uint8
}

// kTimeline samples a node's #K every 250 ms, recording each change.
type kTimeline struct {
	done    chan struct{}
	stopped chan struct{}
	samples []kSample
}

// sampleK starts sampling b's #K until stop.
func sampleK(b *Node) *kTimeline {
	tl := &kTimeline{done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(tl.stopped)
		start := time.Now()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			k := b.Stats().BEX.PuzzleDifficulty
			if n := len(tl.samples); n == 0 || tl.samples[n-1].k != k {
				tl.samples = append(tl.samples, kSample{time.Since(start), k})
			}
			select {
			case <-tl.done:
				return
			case <-tick.C:
			}
		}
	}()
	return tl
}

// stop ends the sampling and returns the changes of #K.
func (tl *kTimeline) stop() []kSample {
	close(tl.done)
	<-tl.stopped
	return tl.samples
}

// max is the highest #K sampled (after stop).
func (tl *kTimeline) max() uint8 {
	var m uint8
	for _, s := range tl.samples {
		m = max(m, s.k)
	}
	return m
}

// baseK is the Responder's #K without load: the handshake's default.
const baseK = 4

// wave is one round of 20 concurrent dials.
type wave struct {
	times []time.Duration // of the dials that completed
	errs  []error
	took  time.Duration
}

// dialWave starts 20 fresh nodes, has them dial b's echo port at once and
// check the stream, and closes them; it adds their HITs to honest.
func dialWave(t *testing.T, b *Node, honest map[HIT]bool) wave {
	t.Helper()
	const n = 20
	nodes := make([]*Node, n)
	for i := range nodes {
		id, err := GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		nodes[i], err = NewNode(Config{Identity: id, ListenAddr: "127.0.0.1:0",
			Peers: map[HIT][]netip.AddrPort{b.HIT(): {b.LocalAddr()}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nodes[i].Close() })
		honest[nodes[i].HIT()] = true
	}
	var (
		mu sync.Mutex
		w  wave
		wg sync.WaitGroup
	)
	start := time.Now()
	for _, nd := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			t0 := time.Now()
			c, err := nd.DialContext(ctx, "tcp", addrOf(b, echoPort))
			d := time.Since(t0)
			if err == nil {
				err = pingPong(c)
				c.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				w.errs = append(w.errs, err)
			} else {
				w.times = append(w.times, d)
			}
		}()
	}
	wg.Wait()
	w.took = time.Since(start)
	var cw sync.WaitGroup
	for _, nd := range nodes {
		cw.Add(1)
		go func() { defer cw.Done(); nd.Close() }()
	}
	cw.Wait()
	return w
}

func medianDur(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
