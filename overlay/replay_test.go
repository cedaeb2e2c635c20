package overlay

import (
	"net"
	"testing"
	"time"

	"hipnet.dev/internal/mitm"
)

// TestReplayedUpdateDrawsNoProbe: an UPDATE already acknowledged, sent
// again from another address (anyone who recorded it can), is answered
// with its cached ACK on the association's path, and is taken for no
// sign of the peer at that address: no probe goes there.
func TestReplayedUpdateDrawsNoProbe(t *testing.T) {
	a, b, px := proxiedPair(t)
	b.poke(b.lookupPeer(a.HIT()), pokeRekey) // b sends an UPDATE with SEQ
	var update []byte
	waitFor(t, 5*time.Second, "b's UPDATE and a's answer", func() bool {
		update = nil
		for _, d := range px.Recorded() {
			upd, seq := isUpdate(&d)
			switch {
			case upd && seq && d.Dir == mitm.ToClient && update == nil:
				update = d.Data
			case upd && d.Dir == mitm.ToTarget && update != nil:
				return true
			}
		}
		return false
	})
	spoof, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer spoof.Close()
	in := a.Stats().ControlIn
	if _, err := spoof.WriteToUDPAddrPort(update, a.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the replay read", func() bool { return a.Stats().ControlIn > in })
	barrier(t, a)
	spoof.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, _, err := spoof.ReadFromUDPAddrPort(make([]byte, 2048)); err == nil {
		t.Fatalf("%d octets sent to the address a replayed UPDATE came from", n)
	}
	a.Close() // while the proxy still carries its CLOSE
}
