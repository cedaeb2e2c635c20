package nat

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"

	"hipnet.dev/handshake/wire"
)

var peerAddr = netip.MustParseAddrPort("192.0.2.7:10500")

// quietSession is a session in m that sends nowhere and has no remote
// candidates: it only receives.
func quietSession(t testing.TB, m *Mux, local, peer wire.HIT, remote ...Candidate) *Session {
	t.Helper()
	return keyedSession(t, m, local, peer, testKey, remote...)
}

// keyedSession is quietSession with the ICE key key.
func keyedSession(t testing.TB, m *Mux, local, peer wire.HIT, key []byte, remote ...Candidate) *Session {
	t.Helper()
	s, err := m.NewSession(SessionConfig{
		LocalHIT: local, PeerHIT: peer, Key: key,
		Local:   netip.MustParseAddrPort("127.0.0.1:10500"),
		Remote:  remote,
		Send:    func([]byte, netip.AddrPort) error { return nil },
		Timeout: time.Hour,
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// bindingRequest builds a check as the owner of sender sends it to the
// owner of recipient (what pion sends, RFC 5770 §5.2).
func bindingRequest(t testing.TB, recipient, sender wire.HIT) []byte {
	t.Helper()
	m, err := stun.Build(stun.BindingRequest, stun.TransactionID,
		stun.NewUsername(username(recipient, sender)),
		ice.AttrControlling(1), ice.PriorityAttr(Priority(wire.KindPeerReflexive)),
		stun.NewShortTermIntegrity(Password(testKey)), stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

func bindingResponse(t testing.TB, id [12]byte, class stun.MessageClass) []byte {
	t.Helper()
	m, err := stun.Build(stun.NewTransactionIDSetter(id), stun.NewType(stun.MethodBinding, class),
		&stun.XORMappedAddress{IP: peerAddr.Addr().AsSlice(), Port: int(peerAddr.Port())},
		stun.NewShortTermIntegrity(Password(testKey)), stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

func TestMuxDeliverRefuses(t *testing.T) {
	m := NewMux()
	quietSession(t, m, hitA, hitB)
	req := bindingRequest(t, hitA, hitB)
	otherMethod := append([]byte(nil), req...)
	binary.BigEndian.PutUint16(otherMethod, 0x0003) // Allocate request
	noUser, _ := stun.Build(stun.BindingRequest, stun.TransactionID, stun.Fingerprint)
	hitC := wire.MustParseHIT("2001:20::a:b:c:3")
	cases := map[string][]byte{
		"nil":              nil,
		"empty":            {},
		"garbage":          bytes.Repeat([]byte{0xff}, 64),
		"zeros":            make([]byte, 20),
		"HIP control":      append(make([]byte, 4), req...), // the non-ESP marker before a HIP packet
		"truncated header": req[:19],
		"truncated body":   req[:len(req)-4],
		"trailing octets":  append(append([]byte(nil), req...), 0, 0, 0, 0),
		"unknown username": bindingRequest(t, hitA, hitC),
		"not our ufrag":    bindingRequest(t, hitC, hitB),
		"no username":      noUser.Raw,
		"other method":     otherMethod,
		"keepalive":        Keepalive(nil),
		"unknown response": bindingResponse(t, [12]byte{1, 2, 3}, stun.ClassSuccessResponse),
		"unknown error":    bindingResponse(t, [12]byte{1, 2, 3}, stun.ClassErrorResponse),
	}
	// An attribute whose length runs past the end, in a message whose
	// header length is right.
	bad := append([]byte(nil), req[:20]...)
	bad = append(bad, 0x00, 0x06, 0x00, 0xff, 'a', 'b', 'c', 'd')
	binary.BigEndian.PutUint16(bad[2:], 8)
	cases["attribute overrun"] = bad
	for name, pkt := range cases {
		if m.Deliver(pkt, peerAddr) {
			t.Errorf("%s: taken", name)
		}
	}
	if !m.Deliver(req, peerAddr) {
		t.Error("a request for the session was refused")
	}
}

func TestMuxRoutesResponses(t *testing.T) {
	m := NewMux()
	s := quietSession(t, m, hitA, hitB)
	id := [12]byte{9, 8, 7}
	m.track(id, peerAddr, s)
	if !m.Deliver(bindingResponse(t, id, stun.ClassSuccessResponse), peerAddr) {
		t.Fatal("response to a tracked check refused")
	}
	id2 := [12]byte{9, 8, 8}
	m.track(id2, peerAddr, s)
	if !m.Deliver(bindingResponse(t, id2, stun.ClassErrorResponse), peerAddr) {
		t.Error("error response to a tracked check refused")
	}
	// Expired entries do not route.
	id3 := [12]byte{9, 8, 9}
	m.track(id3, peerAddr, s)
	m.mu.Lock()
	e := m.tx[id3]
	e.expiry = time.Now().Add(-time.Second)
	m.tx[id3] = e
	m.mu.Unlock()
	if m.Deliver(bindingResponse(t, id3, stun.ClassSuccessResponse), peerAddr) {
		t.Error("response to an expired check taken")
	}
}

// TestMuxForgedResponse: a response from another address than the one
// the check went to, or one whose MESSAGE-INTEGRITY does not verify (an
// observer who saw the check and answers first), is not routed and does
// not use the entry up: the peer's genuine answer still reaches the
// session, and frees the entry, so a copy of it finds none. The
// IPv4-mapped form of the check's address is that address.
func TestMuxForgedResponse(t *testing.T) {
	m := NewMux()
	s := quietSession(t, m, hitA, hitB)
	id := [12]byte{7, 7, 7}
	m.track(id, peerAddr, s)
	genuine := bindingResponse(t, id, stun.ClassSuccessResponse)
	forged, err := stun.Build(stun.NewTransactionIDSetter(id), stun.BindingError, stun.CodeBadRequest, stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.66"), peerAddr.Port())
	if m.Deliver(genuine, elsewhere) {
		t.Error("a response from another address than the check's was routed")
	}
	if m.Deliver(forged.Raw, peerAddr) {
		t.Error("a response without MESSAGE-INTEGRITY was routed")
	}
	mapped := netip.AddrPortFrom(netip.AddrFrom16(peerAddr.Addr().As16()), peerAddr.Port())
	if !m.Deliver(genuine, mapped) {
		t.Fatal("the genuine answer after forged ones was refused")
	}
	if m.Deliver(genuine, peerAddr) {
		t.Error("a copy of the answer was routed: the entry was not freed")
	}
}

func TestMuxTrackBounded(t *testing.T) {
	m := NewMux()
	s := quietSession(t, m, hitA, hitB)
	for i := range txMax + 100 {
		var id [12]byte
		binary.BigEndian.PutUint32(id[:], uint32(i))
		m.track(id, peerAddr, s)
	}
	if len(m.tx) > txMax || m.n > txMax {
		t.Errorf("%d transactions tracked (ring %d), bound %d", len(m.tx), m.n, txMax)
	}
	var newest, oldest [12]byte
	binary.BigEndian.PutUint32(newest[:], txMax+99)
	if _, ok := m.tx[newest]; !ok {
		t.Error("newest transaction pushed out")
	}
	if _, ok := m.tx[oldest]; ok {
		t.Error("oldest transaction kept")
	}
}

// TestMuxReplace: a second session with the same peer ufrag takes over the
// requests; closing the first does not unregister the second.
func TestMuxReplace(t *testing.T) {
	m := NewMux()
	peer2 := hitB
	peer2[0] ^= 1 // another HIT, the same last 32 bits
	old := quietSession(t, m, hitA, hitB)
	newer := quietSession(t, m, hitA, peer2)
	req := bindingRequest(t, hitA, hitB)
	if !m.Deliver(req, peerAddr) {
		t.Fatal("refused")
	}
	if newer.Stats().Delivered != 1 || old.Stats().Delivered != 0 {
		t.Errorf("delivered to old %d, newer %d; want the newer", old.Stats().Delivered, newer.Stats().Delivered)
	}
	_ = old.Close()
	if !m.Deliver(req, peerAddr) {
		t.Error("closing the replaced session unregistered the newer one")
	}
	_ = newer.Close()
	if m.Deliver(req, peerAddr) {
		t.Error("closed session still registered")
	}
}

// TestMuxDeliverAllocs: classifying a packet that no session takes
// allocates nothing. (Skipped under -race by `make test`.)
func TestMuxDeliverAllocs(t *testing.T) {
	m := NewMux()
	quietSession(t, m, hitA, hitB)
	pkts := [][]byte{
		bindingRequest(t, hitA, wire.MustParseHIT("2001:20::a:b:c:3")),
		bindingResponse(t, [12]byte{1}, stun.ClassSuccessResponse),
		Keepalive(nil),
		bytes.Repeat([]byte{0}, 100),
	}
	if n := testing.AllocsPerRun(100, func() {
		for _, p := range pkts {
			m.Deliver(p, peerAddr)
		}
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// FuzzMuxDeliver: Deliver takes any input without panicking, and takes a
// packet only when it is a Binding request with the USERNAME of the
// session, or a response to one of its checks, as pion's decoder reads it.
func FuzzMuxDeliver(f *testing.F) {
	m := NewMux()
	s := quietSession(f, m, hitA, hitB)
	tracked := [12]byte{0x21, 0x12, 0xa4, 0x42}
	f.Add(bindingRequest(f, hitA, hitB))
	f.Add(bindingResponse(f, tracked, stun.ClassSuccessResponse))
	f.Add(Keepalive(nil))
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		m.track(tracked, peerAddr, s)
		took := m.Deliver(pkt, peerAddr)
		if !took {
			return
		}
		var msg stun.Message
		if !IsSTUN(pkt) || stun.Decode(append([]byte(nil), pkt...), &msg) != nil ||
			msg.Type.Method != stun.MethodBinding || msg.Type.Class == stun.ClassIndication {
			t.Fatalf("took a packet that is no Binding request or response: %x", pkt)
		}
		if msg.Type.Class == stun.ClassRequest {
			if u, _ := msg.Get(stun.AttrUsername); string(u) != s.user {
				t.Fatalf("took a request with USERNAME %q", u)
			}
		}
	})
}

// TestSessionSourcesBounded: the peer's checks from sources it did not
// announce reach the agent from at most maxReflexive addresses; the rest
// are dropped and counted, so they cannot grow the agent's candidates
// (and its checks of them) with every source (RFC 8445 §7.3.1.3).
func TestSessionSourcesBounded(t *testing.T) {
	m := NewMux()
	known := netip.MustParseAddrPort("198.51.100.1:10500")
	s := quietSession(t, m, hitA, hitB, Candidate{Addr: known, Kind: wire.KindHost})
	const sources = 200
	for i := range sources {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), 4444)
		m.Deliver(bindingRequest(t, hitA, hitB), from)
	}
	m.Deliver(bindingRequest(t, hitA, hitB), known)
	m.Deliver(bindingRequest(t, hitA, hitB), netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 0, 0}), 4444)) // taken before
	st := s.Stats()
	if st.SourceDrops != sources-maxReflexive {
		t.Errorf("%d dropped by source, want %d", st.SourceDrops, sources-maxReflexive)
	}
	if got := st.Delivered + st.DeliverDrops; got != maxReflexive+2 {
		t.Errorf("%d reached the agent's queue, want %d", got, maxReflexive+2)
	}
}

// TestSessionReplayTakesNoSlot: one check of the peer's, recorded on the
// path and replayed from spoofed sources (MESSAGE-INTEGRITY does not
// cover the source), takes no slot for a source the peer did not
// announce: the peer's genuine check from its NAT mapping still gets one.
// Before, four copies took every slot.
func TestSessionReplayTakesNoSlot(t *testing.T) {
	m := NewMux()
	known := netip.MustParseAddrPort("198.51.100.1:10500")
	s := quietSession(t, m, hitA, hitB, Candidate{Addr: known, Kind: wire.KindHost})
	recorded := bindingRequest(t, hitA, hitB)
	m.Deliver(recorded, known)
	// Junk from the known source (checks that do not verify) must not
	// push the recorded check out of the session's memory.
	for range 2 * recentChecks {
		m.Deliver(forgedRequest(t), known)
	}
	for i := range 2 * maxReflexive {
		m.Deliver(recorded, netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 4444))
	}
	if st := s.Stats(); st.SourceDrops != 2*maxReflexive {
		t.Fatalf("replays: %+v, want all %d dropped by source", st, 2*maxReflexive)
	}
	m.Deliver(recorded, known) // the peer's retransmission
	m.Deliver(bindingRequest(t, hitA, hitB), netip.MustParseAddrPort("192.0.2.50:61000"))
	if st := s.Stats(); st.SourceDrops != 2*maxReflexive {
		t.Fatalf("the peer's retransmission and its genuine check from a new source: %+v, want both taken", st)
	}
}

// forgedRequest is a check with the session's public USERNAME and an
// integrity made with the wrong password.
func forgedRequest(t testing.TB) []byte {
	t.Helper()
	m, err := stun.Build(stun.BindingRequest, stun.TransactionID,
		stun.NewUsername(username(hitA, hitB)), ice.AttrControlling(1),
		stun.NewShortTermIntegrity("not the password"), stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

// TestSessionSourcesAuthentic: checks that do not verify with the
// session's password (the USERNAME is public, the password is not) take
// none of the few slots for sources the peer did not announce, so the
// peer's genuine check from its NAT mapping still gets one.
func TestSessionSourcesAuthentic(t *testing.T) {
	m := NewMux()
	s := quietSession(t, m, hitA, hitB)
	forged := forgedRequest(t)
	for i := range 2 * maxReflexive {
		m.Deliver(forged, netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 5000))
	}
	if st := s.Stats(); st.SourceDrops != 2*maxReflexive || st.Delivered+st.DeliverDrops != 0 {
		t.Fatalf("forged checks: %+v, want all dropped by source", st)
	}
	m.Deliver(bindingRequest(t, hitA, hitB), netip.MustParseAddrPort("198.51.100.9:40000"))
	if st := s.Stats(); st.Delivered+st.DeliverDrops != 1 {
		t.Fatalf("the peer's genuine check from a new source: %+v, want it taken", st)
	}
}

// TestMuxLeavesBufferAlone: Deliver checks an answer's integrity on a
// copy: the caller's buffer, inside and past the packet, is unchanged.
func TestMuxLeavesBufferAlone(t *testing.T) {
	m := NewMux()
	s := quietSession(t, m, hitA, hitB)
	id := [12]byte{5, 5, 5}
	m.track(id, peerAddr, s)
	resp := bindingResponse(t, id, stun.ClassSuccessResponse)
	buf := append(bytes.Clone(resp), bytes.Repeat([]byte{0xaa}, 64)...)
	want := bytes.Clone(buf)
	if !m.Deliver(buf[:len(resp)], peerAddr) {
		t.Fatal("the answer was not routed")
	}
	if !bytes.Equal(buf, want) {
		t.Fatalf("Deliver wrote into the caller's buffer:\n%x\nwant\n%x", buf, want)
	}
}

// TestMuxSharedUsername: a session whose peer's HIT ends in the same 32
// bits as another's (RFC 5770 §5.2's 32-bit ufrag; an attacker can make
// one with some 2³² hashes) does not take the other's checks: a request
// goes to the session whose password it verifies with, newer or not.
func TestMuxSharedUsername(t *testing.T) {
	m := NewMux()
	colliding := hitB
	colliding[0] ^= 1 // another HIT, the same last 32 bits
	genuine := quietSession(t, m, hitA, hitB)
	attacker := keyedSession(t, m, hitA, colliding, []byte("another ICE key!"))
	if !m.Deliver(bindingRequest(t, hitA, hitB), peerAddr) {
		t.Fatal("the genuine peer's check was refused")
	}
	if g, a := genuine.Stats().Delivered, attacker.Stats().Delivered; g != 1 || a != 0 {
		t.Fatalf("delivered to the genuine session %d, to the colliding one %d; want 1 and 0", g, a)
	}
}

// TestMuxSharedUsernameFull: sessions with colliding HITs beyond
// maxShared are not registered, rather than pushing out the oldest, which
// is usually the genuine peer's: its checks still reach it.
func TestMuxSharedUsernameFull(t *testing.T) {
	m := NewMux()
	genuine := quietSession(t, m, hitA, hitB)
	for i := range maxShared {
		colliding := hitB
		colliding[0] ^= byte(i + 1)
		keyedSession(t, m, hitA, colliding, []byte("another ICE key!"))
	}
	if !m.Deliver(bindingRequest(t, hitA, hitB), peerAddr) || genuine.Stats().Delivered != 1 {
		t.Fatalf("the genuine peer's check no longer reaches its session (delivered %d)", genuine.Stats().Delivered)
	}
}
