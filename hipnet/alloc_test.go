package hipnet

import (
	"bytes"
	"context"
	"runtime/debug"
	"testing"
	"time"
)

// addrConn is the allocation-free pair of the PacketConn ListenPacket
// returns, as its documentation shows it to users.
type addrConn interface {
	ReadFromAddr(b []byte) (int, Addr, error)
	WriteToAddr(b []byte, to Addr) (int, error)
}

// TestPacketConnAllocs: through the public API, ListenPacket's conn has
// ReadFromAddr and WriteToAddr, and a datagram sent and received through
// them allocates nothing, end to end over real sockets (the counterpart
// of net.UDPConn's ReadFromUDPAddrPort and WriteToUDPAddrPort).
func TestPacketConnAllocs(t *testing.T) {
	if raceBuild() || testing.CoverMode() != "" {
		t.Skip("the race detector and coverage instrumentation allocate")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, server := pairNodes(t, Config{}, Config{})
	spc, ok := listenPacket(t, server, ":5684").(addrConn)
	if !ok {
		t.Fatal("ListenPacket's conn has no ReadFromAddr and WriteToAddr")
	}
	cpc, ok := listenPacket(t, client, ":0").(addrConn)
	if !ok {
		t.Fatal("ListenPacket's conn has no ReadFromAddr and WriteToAddr")
	}
	if err := client.stack.Connect(ctx, server.HIT()); err != nil {
		t.Fatal(err)
	}
	// As in package overlay's allocation tests: no collection while
	// counting, for one would empty the buffer pools.
	gc := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(gc)

	to := Addr{HIT: server.HIT(), Port: 5684}
	msg := bytes.Repeat([]byte{0x5a, 0xa5}, 600)
	buf := make([]byte, 2048)
	roundTrip := func() {
		if _, err := cpc.WriteToAddr(msg, to); err != nil {
			t.Fatal(err)
		}
		n, from, err := spc.ReadFromAddr(buf)
		if err != nil || n != len(msg) || from.HIT != client.HIT() {
			t.Fatalf("read %d from %v: %v", n, from, err)
		}
	}
	for range 1024 { // fill the pools and the transmit queue's slices
		roundTrip()
	}
	if n := testing.AllocsPerRun(500, roundTrip); n != 0 {
		t.Errorf("a datagram through ListenPacket's conn allocates %.2f times", n)
	}
	if !bytes.Equal(buf[:len(msg)], msg) {
		t.Fatal("payload corrupted")
	}
}
