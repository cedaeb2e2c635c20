package handshake

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

func candidates(addr string) func(wire.HIT) []wire.Locator {
	return func(wire.HIT) []wire.Locator {
		ap := netip.MustParseAddrPort(addr)
		return []wire.Locator{{Traffic: wire.TrafficData, Type: wire.LocatorTypeTransport, Lifetime: 60,
			Port: ap.Port(), Protocol: wire.ProtocolUDP, Kind: wire.KindHost, Priority: 1, SPI: 7, Addr: ap.Addr()}}
	}
}

func natCfg(t *testing.T, n int, modes []uint16, cand string) Config {
	cfg := defaultCfg(testKey(t, hostid.ECDSAP256, n))
	cfg.NATModes = modes
	cfg.Candidates = candidates(cand)
	return cfg
}

// TestICENegotiation: R1 offers the modes, I2 selects ICE-STUN-UDP, each
// side's candidates arrive inside ENCRYPTED (never in the clear), and both
// draw the same STUN key, distinct from the ESP keys.
func TestICENegotiation(t *testing.T) {
	ice := []uint16{wire.NATModeICESTUNUDP, wire.NATModeUDPEncapsulation}
	a := newHost(t, "a", natCfg(t, 0, ice, "10.1.0.2:10500"))
	b := newHost(t, "b", natCfg(t, 1, ice, "10.2.0.2:10501"))
	l := bex(t, a, b)
	ab, ba := a.a(b), b.a(a)
	ba.DataReceived(t0)
	if ab.State() != Established || ba.State() != Established {
		t.Fatalf("states %v %v", ab.State(), ba.State())
	}
	if ab.NATMode() != wire.NATModeICESTUNUDP || ba.NATMode() != wire.NATModeICESTUNUDP {
		t.Fatalf("modes %d %d", ab.NATMode(), ba.NATMode())
	}
	if got := ab.PeerCandidates(); len(got) != 1 || got[0].Addr != netip.MustParseAddr("10.2.0.2") || got[0].Port != 10501 {
		t.Fatalf("initiator learnt %+v", got)
	}
	if got := ba.PeerCandidates(); len(got) != 1 || got[0].Addr != netip.MustParseAddr("10.1.0.2") || got[0].Port != 10500 {
		t.Fatalf("responder learnt %+v", got)
	}
	if len(ab.ICEKey()) != 16 || !bytes.Equal(ab.ICEKey(), ba.ICEKey()) {
		t.Fatalf("ICE keys %x %x", ab.ICEKey(), ba.ICEKey())
	}
	ev := lastEvent(t, a, EventEstablished)
	if bytes.Contains(ev.Outbound.EncKey, ab.ICEKey()) {
		t.Fatal("ICE key overlaps the ESP key")
	}
	for _, p := range l.seen {
		if bytes.Contains(p.b, netip.MustParseAddr("10.1.0.2").AsSlice()) || bytes.Contains(p.b, netip.MustParseAddr("10.2.0.2").AsSlice()) {
			t.Fatalf("%v carries a candidate address in the clear", ptype(p.b))
		}
	}
	// A rekey without new DH draws after the STUN key on both sides.
	if err := ab.Rekey(t0, false); err != nil {
		t.Fatal(err)
	}
	l = &link{}
	l.send(a, b, a.collect(ab))
	l.run(t, t0)
	ef, et := lastEvent(t, a, EventRekeyed), lastEvent(t, b, EventRekeyed)
	checkSAs(t, ef.Outbound, ef.Inbound, et.Outbound, et.Inbound)
	if bytes.Contains(ef.Outbound.EncKey, ab.ICEKey()) || bytes.Contains(ef.Inbound.EncKey, ab.ICEKey()) {
		t.Fatal("rekeyed ESP keys reuse the STUN key")
	}
}

// TestNATModeFallback: without a common mode, or when one side offers
// none, the exchange completes with mode 0 and no candidates.
func TestNATModeFallback(t *testing.T) {
	a := newHost(t, "a", natCfg(t, 0, []uint16{wire.NATModeUDPEncapsulation}, "10.1.0.2:1"))
	b := newHost(t, "b", natCfg(t, 1, []uint16{wire.NATModeICESTUNUDP, wire.NATModeUDPEncapsulation}, "10.2.0.2:1"))
	bex(t, a, b)
	if a.a(b).NATMode() != wire.NATModeUDPEncapsulation || b.a(a).NATMode() != wire.NATModeUDPEncapsulation {
		t.Fatalf("modes %d %d", a.a(b).NATMode(), b.a(a).NATMode())
	}
	if a.a(b).PeerCandidates() != nil || a.a(b).ICEKey() != nil {
		t.Fatal("candidates or key without ICE")
	}
	c := newHost(t, "c", natCfg(t, 2, nil, "10.3.0.2:1"))
	bex(t, c, b)
	if c.a(b).NATMode() != 0 || b.a(c).NATMode() != 0 || c.a(b).State() != Established {
		t.Fatalf("no-mode exchange: %d %d %v", c.a(b).NATMode(), b.a(c).NATMode(), c.a(b).State())
	}
}

// TestNATModeNotOffered: an I2 naming a mode the R1 did not offer is
// refused with NO_VALID_NAT_TRAVERSAL_MODE_PARAMETER.
func TestNATModeNotOffered(t *testing.T) {
	a := newHost(t, "a", natCfg(t, 0, []uint16{wire.NATModeUDPEncapsulation}, "10.1.0.2:1"))
	b := newHost(t, "b", natCfg(t, 1, []uint16{wire.NATModeUDPEncapsulation}, "10.2.0.2:1"))
	// b's R1s (signed, pre-built) offer UDP-ENCAPSULATION, which a
	// selects; b's policy changes to ICE only before the I2 arrives.
	l := &link{}
	l.send(a, b, a.initiate(t0, b.e.HIT()))
	b.e.cfg.NATModes = []uint16{wire.NATModeICESTUNUDP}
	l.run(t, t0)
	if b.a(a) != nil && b.a(a).State() == Established {
		t.Fatal("responder accepted a mode it no longer offers")
	}
	var notify bool
	for _, p := range l.seen {
		if ptype(p.b) == wire.NOTIFY {
			pkt, _ := wire.ParsePacket(p.b)
			q, _ := pkt.Param(wire.ParamNotification)
			n, _ := wire.ParseNotification(q.Contents())
			notify = n.Type == wire.NotifyNoValidNATTraversalModeParameter
		}
	}
	if !notify {
		t.Fatal("no NO_VALID_NAT_TRAVERSAL_MODE_PARAMETER notify")
	}
}

// TestRelayHMAC: a relay's RELAY_FROM verifies at the registered host
// and strips back to the original packet; a forged or foreign-keyed one
// does not.
func TestRelayHMAC(t *testing.T) {
	host, relay := pair(t)
	bex(t, host, relay)
	other := newHost(t, "other", defaultCfg(testKey(t, hostid.ECDSAP256, 2)))
	i1 := other.initiate(t0, host.e.HIT())[0]
	from := wire.TransportAddress{Type: wire.ParamRelayFrom, Port: 40000, Protocol: wire.ProtocolUDP, Addr: netip.MustParseAddr("198.18.0.77")}
	fwd, err := relay.a(host).AppendRelayed(append([]byte(nil), i1...), from)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := wire.ParsePacket(fwd)
	if got, ok := RelayAddr(p); !ok || got != from {
		t.Fatalf("RelayAddr %+v %v", got, ok)
	}
	inner, addr, err := host.a(relay).OpenRelayed(append([]byte(nil), fwd...))
	if err != nil || addr != from || !bytes.Equal(inner, i1) {
		t.Fatalf("OpenRelayed: %v %+v equal=%v", err, addr, bytes.Equal(inner, i1))
	}
	// The relay cannot check its own packet as if the host had sent it.
	if _, _, err := relay.a(host).OpenRelayed(append([]byte(nil), fwd...)); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("own key: %v", err)
	}
	// A rewritten address fails.
	forged := append([]byte(nil), fwd...)
	forged[len(i1)+8+2] ^= 1
	if _, _, err := host.a(relay).OpenRelayed(forged); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("forged: %v", err)
	}
	if _, _, err := host.a(relay).OpenRelayed(append([]byte(nil), i1...)); !errors.Is(err, ErrNotRelayed) {
		t.Fatalf("plain: %v", err)
	}
	// A packet whose I1 processing follows: the host answers it normally.
	if out := host.deliver(t0, inner); len(out) != 1 || ptype(out[0]) != wire.R1 {
		t.Fatalf("host answered the stripped I1 with %d packets", len(out))
	}
}

// TestPacingNegotiation: with ICE-STUN-UDP, R1 and I2 carry
// TRANSACTION_PACING (RFC 5770 §4.4); both hosts then use the higher of
// the two values, the Initiator never proposes less than the Responder
// offered, and a value under 20 ms is raised to it. Without ICE, neither
// packet carries one and Pacing is zero.
func TestPacingNegotiation(t *testing.T) {
	ice := []uint16{wire.NATModeICESTUNUDP, wire.NATModeUDPEncapsulation}
	for _, c := range []struct {
		name         string
		initTa, resp time.Duration
		want         time.Duration
	}{
		{"defaults", 0, 0, DefaultMinTa},
		{"initiator higher", 80 * time.Millisecond, 50 * time.Millisecond, 80 * time.Millisecond},
		{"responder higher", 50 * time.Millisecond, 120 * time.Millisecond, 120 * time.Millisecond},
		{"below the floor", 5 * time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			ca, cb := natCfg(t, 0, ice, "10.1.0.2:1"), natCfg(t, 1, ice, "10.2.0.2:1")
			ca.MinTa, cb.MinTa = c.initTa, c.resp
			a, b := newHost(t, "a", ca), newHost(t, "b", cb)
			l := bex(t, a, b)
			if pa, pb := a.a(b).Pacing(), b.a(a).Pacing(); pa != c.want || pb != c.want {
				t.Fatalf("pacing %v and %v, want %v", pa, pb, c.want)
			}
			for _, p := range l.seen {
				pkt, err := wire.ParsePacket(p.b)
				if err != nil || (pkt.Type() != wire.R1 && pkt.Type() != wire.I2) {
					continue
				}
				got := peerTa(pkt)
				want := c.want // I2: the higher of the two
				if pkt.Type() == wire.R1 {
					want = c.resp // the Responder's own
					if want == 0 {
						want = DefaultMinTa
					}
					want = max(want, minMinTa)
				}
				if got != want {
					t.Errorf("%v announces %v, want %v", pkt.Type(), got, want)
				}
			}
		})
	}
	a := newHost(t, "a", natCfg(t, 2, []uint16{wire.NATModeUDPEncapsulation}, "10.1.0.2:1"))
	b := newHost(t, "b", natCfg(t, 3, []uint16{wire.NATModeUDPEncapsulation}, "10.2.0.2:1"))
	l := bex(t, a, b)
	if a.a(b).Pacing() != 0 || b.a(a).Pacing() != 0 {
		t.Fatalf("pacing without ICE: %v %v", a.a(b).Pacing(), b.a(a).Pacing())
	}
	for _, p := range l.seen {
		if pkt, err := wire.ParsePacket(p.b); err == nil {
			if _, ok := pkt.Param(wire.ParamTransactionPacing); ok {
				t.Fatalf("%v carries TRANSACTION_PACING without ICE-STUN-UDP", pkt.Type())
			}
		}
	}
}

// TestPacingUnannounced: a peer whose R1 or I2 carries no
// TRANSACTION_PACING is taken to use 500 ms (RFC 5770 §4.4), and the
// higher value wins.
func TestPacingUnannounced(t *testing.T) {
	var b wire.Builder
	b.Reset(nil, wire.R1, wire.HIT{}, wire.HIT{})
	raw, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pkt, _ := wire.ParsePacket(raw)
	if got := peerTa(pkt); got != UnannouncedTa {
		t.Fatalf("no TRANSACTION_PACING: %v, want %v", got, UnannouncedTa)
	}
	e := &Endpoint{cfg: Config{MinTa: DefaultMinTa}}
	if got := e.pacing(peerTa(pkt)).Duration(); got != UnannouncedTa {
		t.Fatalf("against a peer that announced none: %v, want %v", got, UnannouncedTa)
	}
}
