package netstack

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// tcpPayloadLen returns the data length of a TCP segment.
func tcpPayloadLen(seg []byte) int { return len(seg) - int(seg[12]>>4)*4 }

const tcpFlagRST = 0x04

// TestBinding: a connection's peer is exactly the HIT of the SA its
// segments arrive on. A segment handed in with src X belongs to X's
// connections; the same octets, even with the sequence numbers and
// ports of a live connection with Y, never reach Y's connection when
// they arrive with src X, because the inner source address is not
// carried and there is nothing in the segment to claim Y with.
func TestBinding(t *testing.T) {
	nodes := newNodes(t, newFakeNet(), 3, Config{})
	a, y, x := nodes[0], nodes[1], nodes[2]
	var wg sync.WaitGroup
	defer wg.Wait()
	l, err := a.Listen(443)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()

	cy := dial(t, y.Transport, a.local, 443)
	ay := <-accepted
	defer ay.Close()
	if got := ay.RemoteAddr().(*overlay.Addr); got.HIT != y.local || got.Port != cy.LocalAddr().(*overlay.Addr).Port {
		t.Fatalf("accepted RemoteAddr %v, want Y %v", got, cy.LocalAddr())
	}

	// Capture Y's next data segment to A instead of sending it.
	captured := make(chan []byte, 1)
	y.link.setTap(func(dst wire.HIT, seg []byte) bool {
		if dst != a.local || tcpPayloadLen(seg) == 0 {
			return true
		}
		select {
		case captured <- append([]byte(nil), seg...):
		default:
		}
		return false // and swallow its retransmissions too
	})
	// Watch what A answers X.
	var toX [][]byte
	var toXMu sync.Mutex
	a.link.setTap(func(dst wire.HIT, seg []byte) bool {
		if dst == x.local {
			toXMu.Lock()
			toX = append(toX, append([]byte(nil), seg...))
			toXMu.Unlock()
		}
		return true
	})
	if _, err := cy.Write([]byte("for A from Y")); err != nil {
		t.Fatal(err)
	}
	var seg []byte
	select {
	case seg = <-captured:
	case <-time.After(5 * time.Second):
		t.Fatal("no data segment from Y")
	}

	// The same octets arrive on X's SA.
	a.link.handle(x.local, seg)
	ay.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := ay.Read(make([]byte, 64)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Y's connection read %d octets, %v, from a segment on X's SA", n, err)
	}
	select {
	case c := <-accepted:
		t.Fatalf("the forged segment opened a connection from %v", c.RemoteAddr())
	default:
	}
	toXMu.Lock()
	for _, s := range toX {
		if tcpPayloadLen(s) != 0 || s[13]&tcpFlagRST == 0 {
			t.Errorf("A answered X with flags %#x and %d data octets, want RST alone", s[13], tcpPayloadLen(s))
		}
	}
	t.Logf("A answered X with %d segment(s)", len(toX))
	toXMu.Unlock()

	// The same octets on Y's SA are Y's data.
	y.link.setTap(nil)
	a.link.handle(y.local, seg)
	ay.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len("for A from Y"))
	if _, err := io.ReadFull(ay, buf); err != nil || string(buf) != "for A from Y" {
		t.Fatalf("Y's connection read %q, %v", buf, err)
	}

	// And X's own connection is X's.
	cx := dial(t, x.Transport, a.local, 443)
	ax := <-accepted
	defer ax.Close()
	if got := ax.RemoteAddr().(*overlay.Addr); got.HIT != x.local || got.Port != cx.LocalAddr().(*overlay.Addr).Port {
		t.Fatalf("accepted RemoteAddr %v, want X %v", got, cx.LocalAddr())
	}
}
