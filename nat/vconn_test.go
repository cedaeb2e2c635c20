package nat

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

func TestVconnQueueBounded(t *testing.T) {
	var drops atomic.Uint64
	c := newVconn(netip.MustParseAddrPort("127.0.0.1:1"), nil, &drops)
	pkt := []byte{1, 2, 3}
	for range inboundQueue + 10 {
		if !c.deliver(pkt, peerAddr) {
			t.Fatal("refused while open")
		}
	}
	if drops.Load() != 10 {
		t.Errorf("%d drops, want 10", drops.Load())
	}
	pkt[0] = 9 // deliver copied
	buf := make([]byte, 16)
	n, from, err := c.ReadFromAddrPort(buf)
	if err != nil || n != 3 || buf[0] != 1 || from != peerAddr {
		t.Errorf("read %d %x from %v, %v", n, buf[:n], from, err)
	}
}

func TestVconnDeadlineAndClose(t *testing.T) {
	var drops atomic.Uint64
	c := newVconn(netip.MustParseAddrPort("127.0.0.1:1"), nil, &drops)
	_ = c.SetDeadline(time.Now())
	_, _, err := c.ReadFrom(make([]byte, 8))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read past the deadline: %v", err)
	}
	_ = c.SetDeadline(time.Time{})
	done := make(chan error)
	go func() {
		_, _, err := c.ReadFromAddrPort(make([]byte, 8))
		done <- err
	}()
	_ = c.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("read on close: %v", err)
	}
	if _, err := c.WriteTo([]byte{1}, net.UDPAddrFromAddrPort(peerAddr)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
	if c.deliver([]byte{1}, peerAddr) {
		t.Error("deliver after close")
	}
}
