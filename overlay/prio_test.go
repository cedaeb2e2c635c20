package overlay

import (
	"net/netip"
	"testing"

	"hipnet.dev/handshake/wire"
)

// TestControlPriority: control packets that claim a known peer (other than
// I1s) go to the priority queue, so that a flood from unknown HITs that
// fills the ordinary queue (and is dropped, counted) cannot crowd out an
// association's own UPDATEs, CLOSEs, R1s and R2s.
func TestControlPriority(t *testing.T) {
	s, err := newStack(Config{Identity: testKey(t, 0), ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.sock.close() })
	known := wire.HIT(testKey(t, 1).HIT())
	s.AddPeer(known, netip.MustParseAddrPort("192.0.2.1:10500"))
	from := netip.MustParseAddrPort("192.0.2.1:10500")
	pkt := func(typ wire.PacketType, sender wire.HIT) []byte {
		var b wire.Builder
		b.Reset(nil, typ, sender, s.hit)
		b.Add(wire.Seq{UpdateID: 1})
		raw, err := b.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return wire.AppendUDPControl(nil, raw)
	}
	stranger := func(i int) wire.HIT {
		h := wire.HIT{0x20, 0x01, 0x00, 0x20}
		h[15], h[14] = byte(i), byte(i>>8)
		return h
	}
	for i := range controlBacklog + 10 { // a flood from unknown HITs
		s.receive(pkt(wire.I2, stranger(i)), from)
	}
	if len(s.ctrlIn) != controlBacklog || s.ctr.controlBacklog.Load() != 10 {
		t.Fatalf("ordinary queue %d, backlog drops %d", len(s.ctrlIn), s.ctr.controlBacklog.Load())
	}
	s.receive(pkt(wire.UPDATE, known), from)
	s.receive(pkt(wire.CLOSE, known), from)
	s.receive(pkt(wire.I1, known), from) // an I1 is never prioritised
	if len(s.ctrlPrio) != 2 {
		t.Fatalf("priority queue holds %d, want the known peer's UPDATE and CLOSE", len(s.ctrlPrio))
	}
	if d := s.ctr.controlBacklog.Load(); d != 11 {
		t.Fatalf("backlog drops %d, want 11 (the flood's 10 and the I1)", d)
	}
}
