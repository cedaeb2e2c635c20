package streams

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// Packet headers for the tests (RFC 9000 §17): a 1-RTT packet to id, and
// a long-header packet of first octet first (0xc0 Initial, 0xd0 0-RTT,
// 0xe0 Handshake, in version 1) padded to size.
func shortPacket(id quic.ConnectionID) []byte {
	return append(append([]byte{0x40}, id.Bytes()...), make([]byte, 40)...)
}

func longPacket(first byte, version uint32, dcid, scid []byte, size int) []byte {
	b := []byte{first, byte(version >> 24), byte(version >> 16), byte(version >> 8), byte(version), byte(len(dcid))}
	b = append(append(b, dcid...), byte(len(scid)))
	b = append(b, scid...)
	return append(b, make([]byte, max(0, size-len(b)))...)
}

var (
	hitB = wire.HIT{0x20, 0x01, 0x00, 0x20, 15: 0xb}
	hitC = wire.HIT{0x20, 0x01, 0x00, 0x20, 15: 0xc}
)

// TestCIDTable: an ID we issue serves only the HIT our first packet with
// it went to, and none before; a client's first Destination Connection ID
// serves only the sender of the first Initial or 0-RTT packet with it
// (a 0-RTT packet may overtake its Initial); a long-header packet with an
// unknown ID is dropped unless it is such a packet; a 1-RTT packet with an
// unknown one (a stateless reset) passes.
func TestCIDTable(t *testing.T) {
	tb := newCIDTable()
	now := time.Now()
	id, err := tb.generate(now)
	if err != nil || id.Len() != cidLen {
		t.Fatalf("generate: %v, %v", id, err)
	}
	if tb.admit(shortPacket(id), hitB) {
		t.Fatal("an ID not yet sent to anyone admitted")
	}
	peerID := randomBytes(8)
	if !tb.sent(longPacket(0xc0, quicV1, peerID, id.Bytes(), 1200), hitB) {
		t.Fatal("our Initial to b refused")
	}
	for _, c := range []struct {
		what string
		pkt  []byte
		from wire.HIT
		want bool
	}{
		{"1-RTT from b", shortPacket(id), hitB, true},
		{"1-RTT from c with b's ID", shortPacket(id), hitC, false},
		{"Handshake from b", longPacket(0xe0, quicV1, id.Bytes(), peerID, 100), hitB, true},
		{"Handshake from c with b's ID", longPacket(0xe0, quicV1, id.Bytes(), peerID, 100), hitC, false},
		{"Initial from c with b's ID", longPacket(0xc0, quicV1, id.Bytes(), peerID, 1200), hitC, false},
		{"1-RTT with an unknown ID (a stateless reset)", shortPacket(quic.ConnectionIDFromBytes(randomBytes(8))), hitC, true},
		{"not QUIC", make([]byte, 50), hitC, true},
		{"Handshake with an unknown ID", longPacket(0xe0, quicV1, randomBytes(8), peerID, 1200), hitB, false},
		{"0-RTT with an unknown ID (ahead of its Initial)", longPacket(0xd0, quicV1, randomBytes(8), peerID, 100), hitB, true},
		{"0-RTT with a short unknown ID", longPacket(0xd0, quicV1, randomBytes(7), peerID, 100), hitB, false},
		{"Retry with an unknown ID", longPacket(0xf0, quicV1, randomBytes(8), peerID, 100), hitB, false},
		{"Initial in a short datagram", longPacket(0xc0, quicV1, randomBytes(8), peerID, 1199), hitB, false},
		{"Initial with a short ID", longPacket(0xc0, quicV1, randomBytes(7), peerID, 1200), hitB, false},
		{"Initial of an unknown version", longPacket(0xc0, 0x1a2a3a4a, randomBytes(8), peerID, 1200), hitB, false},
		{"Initial of version 2", longPacket(0xd0, quicV2, randomBytes(8), peerID, 1200), hitB, true},
		{"truncated long header", []byte{0xc0, 0, 0, 0, 1, 8, 1, 2}, hitB, false},
	} {
		if got := tb.admit(c.pkt, c.from); got != c.want {
			t.Errorf("%s: admitted %v, want %v", c.what, got, c.want)
		}
	}
	if tb.sent(longPacket(0xe0, quicV1, peerID, id.Bytes(), 100), hitC) {
		t.Error("b's ID left in a packet to c")
	}

	odcid := randomBytes(12)
	initial := longPacket(0xc0, quicV1, odcid, peerID, 1200)
	if !tb.admit(initial, hitC) {
		t.Fatal("c's first Initial refused")
	}
	if tb.admit(initial, hitB) || tb.admit(longPacket(0xd0, quicV1, odcid, peerID, 100), hitB) {
		t.Error("b's Initial or 0-RTT with the ID of c's connection admitted")
	}
	if !tb.admit(initial, hitC) || !tb.admit(longPacket(0xd0, quicV1, odcid, peerID, 100), hitC) {
		t.Error("c's second Initial or its 0-RTT refused")
	}
	// A 0-RTT packet that overtook its Initial binds the ID for its
	// sender: the Initial that follows passes, another's does not.
	early := randomBytes(8)
	if !tb.admit(longPacket(0xd0, quicV1, early, peerID, 100), hitB) ||
		!tb.admit(longPacket(0xc0, quicV1, early, peerID, 1200), hitB) ||
		tb.admit(longPacket(0xc0, quicV1, early, peerID, 1200), hitC) {
		t.Error("a 0-RTT packet ahead of its Initial: its sender's Initial refused, or another's admitted")
	}
	if tb.dropped.Load() == 0 {
		t.Error("nothing counted as dropped")
	}
}

// TestCIDTableBounds: a peer's client-chosen IDs are at most
// odcidsPerPeer, and go odcidLife after they came; an ID of ours goes once
// no packet used it between two sweeps, an unused one at once.
func TestCIDTableBounds(t *testing.T) {
	tb := newCIDTable()
	t0 := tb.swept
	for range odcidsPerPeer {
		if !tb.bindInitial(randomBytes(8), hitC, t0) {
			t.Fatal("an Initial within the bound refused")
		}
	}
	if tb.bindInitial(randomBytes(12), hitC, t0) {
		t.Fatal("an Initial beyond odcidsPerPeer admitted")
	}
	if !tb.bindInitial(randomBytes(12), hitB, t0) {
		t.Fatal("another peer's Initial refused")
	}

	used, _ := tb.generate(t0)
	tb.sent(longPacket(0xc0, quicV1, randomBytes(8), used.Bytes(), 1200), hitB)
	unused, _ := tb.generate(t0)
	sweep := func(at time.Duration) {
		tb.mu.Lock()
		tb.sweepLocked(t0.Add(at))
		tb.mu.Unlock()
	}
	has := func(id quic.ConnectionID) bool {
		tb.mu.RLock()
		defer tb.mu.RUnlock()
		return tb.get(id.Bytes()) != nil
	}
	sweep(tb.sweepEvery) // all new, so used; the client IDs are old enough
	if len(tb.odcids) != 0 || len(tb.ids8)+len(tb.idsN) != 2 {
		t.Fatalf("after the first sweep: %d IDs, client IDs of %d peers; want 2 and none", len(tb.ids8)+len(tb.idsN), len(tb.odcids))
	}
	tb.admit(shortPacket(used), hitB)
	sweep(2 * tb.sweepEvery)
	if !has(used) || has(unused) {
		t.Fatalf("after the second sweep: used %v, unused %v; want only the used one", has(used), has(unused))
	}
	sweep(3 * tb.sweepEvery)
	if has(used) {
		t.Fatal("an ID unused since the last sweep kept")
	}
}

// queuePC returns its datagrams in turn, then an error.
type queuePC struct {
	addrPC
	queue []struct {
		b    []byte
		from wire.HIT
	}
}

func (p *queuePC) ReadFromAddr(b []byte) (int, overlay.Addr, error) {
	if len(p.queue) == 0 {
		return 0, overlay.Addr{}, errors.New("no more")
	}
	d := p.queue[0]
	p.queue = p.queue[1:]
	return copy(b, d.b), overlay.Addr{HIT: d.from, Port: 7}, nil
}

// TestPacketConnDropsForeignIDs: ReadFrom skips a datagram with another
// HIT's connection ID and returns the next; a read of an admitted 1-RTT
// packet and a write allocate nothing.
func TestPacketConnDropsForeignIDs(t *testing.T) {
	fake := &queuePC{}
	pc := newPacketConn(fake)
	id, _ := pc.cids.generate(time.Now())
	pc.WriteTo(longPacket(0xc0, quicV1, randomBytes(8), id.Bytes(), 1200), &overlay.Addr{HIT: hitB, Port: 7})
	pkt := shortPacket(id)
	fake.queue = append(fake.queue, struct {
		b    []byte
		from wire.HIT
	}{pkt, hitC}, struct {
		b    []byte
		from wire.HIT
	}{pkt, hitB})
	buf := make([]byte, 1500)
	n, from, err := pc.ReadFrom(buf)
	if err != nil || n != len(pkt) || !from.(*net.UDPAddr).IP.Equal(net.IP(hitB[:])) || len(fake.queue) != 0 {
		t.Fatalf("ReadFrom: %d octets from %v, %v; want b's packet, c's skipped", n, from, err)
	}

	one := newPacketConn(&addrPC{from: overlay.Addr{HIT: hitB, Port: 7}})
	id, _ = one.cids.generate(time.Now())
	one.WriteTo(longPacket(0xc0, quicV1, randomBytes(8), id.Bytes(), 1200), &overlay.Addr{HIT: hitB, Port: 7})
	buf = make([]byte, 1350)
	copy(buf, shortPacket(id))
	if a := testing.AllocsPerRun(1000, func() {
		_, from, _ := one.ReadFrom(buf)
		one.WriteTo(buf, from)
	}); a != 0 {
		t.Fatalf("%v allocations per read and write", a)
	}
}

// TestNoNewConnectionIDs: each connection keeps the one connection ID of
// its handshake, on both sides (cids.go: quic-go issues no
// NEW_CONNECTION_ID while ConnectionIDLen reports 0), and no packet of the
// peer is dropped for using another. A quic-go that issued more would fail
// here first.
func TestNoNewConnectionIDs(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	echoOn(t, b, 80)
	if err := roundTrip(t, a.m, b.hit, 80, randomBytes(1<<20)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n      *node
		peer   wire.HIT
		odcids int // the client's first Destination Connection ID, on the server
	}{{a, b.hit, 0}, {b, a.hit, 1}} {
		tb := c.n.m.pc.cids
		tb.mu.RLock()
		ours, theirs := 0, 0
		for _, e := range tb.all() {
			if !e.bound || e.owner != c.peer {
				t.Errorf("an ID bound to %v (bound %v), want only %v", e.owner, e.bound, c.peer)
			}
			if e.odcid {
				theirs++
			} else {
				ours++
			}
		}
		tb.mu.RUnlock()
		if ours != 1 || theirs != c.odcids {
			t.Errorf("%d IDs issued and %d client IDs, want 1 and %d", ours, theirs, c.odcids)
		}
		if d := tb.dropped.Load(); d != 0 {
			t.Errorf("%d datagrams dropped", d)
		}
	}
}

// TestConnectionKeepsItsHIT: peer b lends its connection with a to host
// c, which has an association of its own with a. While the detour lasts,
// b's datagrams to a leave from c's address, and c passes what a sends it
// on to b: all a connection needs to follow its peer to a new address
// (RFC 9000 §9), which quic-go's server connections do, validating the
// path first (§8.2). a must not let it: it drops the datagrams (they name
// b's connection and come from c), sends nothing to c, the connection's
// peer stays b, and b's stream, once the detour ends, carries on and
// echoes everything.
func TestConnectionKeepsItsHIT(t *testing.T) {
	ka, kb, kc := testIdentities(t)
	a, b := newPair(t, ka, kb)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a.pc.admit(wire.HIT(kc.HIT()), c.LocalAddr().(*net.UDPAddr))
	aAddr := a.pc.c.LocalAddr().(*net.UDPAddr)
	bAddr := b.pc.c.LocalAddr().(*net.UDPAddr)

	var toC atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			toC.Add(1)
			a.pc.c.WriteToUDP(buf[:n], bAddr) // on to b, as from a
		}
	}()
	var detour atomic.Bool
	divert := func(p []byte, to wire.HIT) bool {
		if !detour.Load() || to != a.hit {
			return false
		}
		c.WriteToUDP(p, aAddr)
		return true
	}
	b.pc.divert.Store(&divert)

	echoOn(t, a, 80)
	// b dials: a is the server, the side quic-go moves to a new path.
	s, err := b.m.Dial(dialCtx(t), a.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := randomBytes(1 << 20)
	echoed := make(chan []byte, 1)
	go func() {
		got, _ := io.ReadAll(s)
		echoed <- got
	}()
	go func() {
		for off := 0; off < len(data); off += 16 << 10 {
			if _, err := s.Write(data[off : off+16<<10]); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		s.(interface{ CloseWrite() error }).CloseWrite()
	}()

	peer := func() wire.HIT {
		a.m.mu.Lock()
		defer a.m.mu.Unlock()
		for qc := range a.m.conns {
			h, _ := remoteHIT(qc.c.RemoteAddr())
			return h
		}
		return wire.HIT{}
	}
	time.Sleep(100 * time.Millisecond)
	detour.Store(true)
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if h := peer(); h != b.hit {
			t.Fatalf("a's connection with b now has the peer %v", h)
		}
	}
	detour.Store(false)

	select {
	case got := <-echoed:
		if !bytes.Equal(got, data) {
			t.Fatalf("echoed %d octets, not the %d sent", len(got), len(data))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not recover from the detour")
	}
	if n := toC.Load(); n != 0 {
		t.Fatalf("a sent %d datagrams to c", n)
	}
	if h := peer(); h != b.hit {
		t.Fatalf("a's connection with b has the peer %v", h)
	}
	if a.m.pc.cids.dropped.Load() == 0 {
		t.Fatal("a dropped nothing: the detour did not happen")
	}
}

// all is every entry of t; t.mu is held.
func (t *cidTable) all() []*cidEntry {
	var es []*cidEntry
	for _, e := range t.ids8 {
		es = append(es, e)
	}
	for _, e := range t.idsN {
		es = append(es, e)
	}
	return es
}

// TestCIDTableOwnBound: a peer keeps at most ownPerPeer bound IDs of ours,
// however many connections it makes and keeps sending on: the one
// unused since the last sweep goes first, then the oldest; another
// peer's stay.
func TestCIDTableOwnBound(t *testing.T) {
	tb := newCIDTable()
	t0 := tb.swept
	bind := func(h wire.HIT, at time.Time) quic.ConnectionID {
		id, _ := tb.generate(at)
		if !tb.sent(longPacket(0xc0, quicV1, randomBytes(8), id.Bytes(), 1200), h) {
			t.Fatal("a new ID of ours not bound")
		}
		return id
	}
	other := bind(hitB, t0)
	var ids []quic.ConnectionID
	for i := range 3 * ownPerPeer {
		ids = append(ids, bind(hitC, t0.Add(time.Duration(i)*time.Millisecond)))
	}
	if n := tb.own[hitC]; n != ownPerPeer || len(tb.ids8) != ownPerPeer+1 {
		t.Fatalf("%d IDs of ours bound to the peer (%d in all), want %d", n, len(tb.ids8), ownPerPeer)
	}
	has := func(id quic.ConnectionID) bool {
		tb.mu.RLock()
		defer tb.mu.RUnlock()
		return tb.get(id.Bytes()) != nil
	}
	if !has(other) || has(ids[0]) || !has(ids[len(ids)-1]) {
		t.Fatalf("the other peer's kept %v, the oldest kept %v, the newest kept %v", has(other), has(ids[0]), has(ids[len(ids)-1]))
	}
	// An unused one goes before an older used one.
	kept := ids[len(ids)-ownPerPeer:]
	for _, e := range tb.ids8 {
		e.used.Store(true)
	}
	tb.ids8[binary.LittleEndian.Uint64(kept[5].Bytes())].used.Store(false)
	bind(hitC, t0.Add(time.Hour))
	if has(kept[5]) || !has(kept[0]) {
		t.Fatalf("the unused ID kept %v, the oldest used one kept %v", has(kept[5]), has(kept[0]))
	}
	// Swept, they are uncounted.
	tb.mu.Lock()
	tb.sweepLocked(t0.Add(time.Hour + tb.sweepEvery))
	tb.sweepLocked(t0.Add(time.Hour + 2*tb.sweepEvery))
	tb.mu.Unlock()
	if len(tb.own) != 0 || len(tb.ids8) != 0 {
		t.Fatalf("after two sweeps with no use: %d peers counted, %d IDs", len(tb.own), len(tb.ids8))
	}
}
