package hipnet

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/streams"
)

// muteConn is a PacketConn that stops sending, silently, once mute is
// set: a process that crashed sends no CLOSE.
type muteConn struct {
	net.PacketConn
	mute atomic.Bool
}

func (m *muteConn) WriteTo(b []byte, a net.Addr) (int, error) {
	if m.mute.Load() {
		return len(b), nil
	}
	return m.PacketConn.WriteTo(b, a)
}

// TestServerCrashRestart: a server crashes (no CLOSE) and starts again at
// once, with the same identity on the same address. The client still has
// the association, and its ESP is dropped there for its unknown SPI; the
// restarted server learns of the association it lost from the client's
// checks of the path (UPDATEs) and starts a base exchange with it, which
// replaces the client's (RFC 7401 §4.4.4, I2 in ESTABLISHED). The client's
// dials work again within seconds, on both stream transports, instead of
// failing until its association idles out (15 minutes, and never while it
// keeps trying).
func TestServerCrashRestart(t *testing.T) {
	for _, tr := range streamTransports {
		t.Run(tr.name, func(t *testing.T) { serverCrashRestart(t, tr.f, false) })
	}
	// A server that has its client configured dials it at the address it
	// knows, not at the source of the check.
	t.Run("quic/client configured", func(t *testing.T) { serverCrashRestart(t, streamTransports[0].f, true) })
}

func serverCrashRestart(t *testing.T, f streams.Factory, knowsClient bool) {
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := raw.LocalAddr().String()
	mc := &muteConn{PacketConn: raw}
	s1 := newTestNode(t, Config{Identity: id, PacketConn: mc, Streams: f})
	echoServer(t, s1, 7)
	client := newTestNode(t, Config{Streams: f})
	client.AddPeer(s1.HIT(), s1.LocalAddr())
	echo := func(d time.Duration) error {
		c, err := client.DialContext(ctxT(t, d), "tcp", addrOf(s1, 7))
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(d))
		return pingPong(c)
	}
	if err := echo(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	mc.mute.Store(true) // the crash: nothing more leaves, CLOSE included
	s1.Close()
	s2 := newTestNode(t, Config{Identity: id, ListenAddr: addr, Streams: f})
	if knowsClient {
		s2.AddPeer(client.HIT(), client.LocalAddr())
	}
	echoServer(t, s2, 7)
	start := time.Now()
	for {
		err := echo(3 * time.Second)
		if err == nil {
			break
		}
		if time.Since(start) > 20*time.Second {
			for _, p := range client.Peers() {
				t.Logf("client's record of the server: %s, packets out %d in %d", p.State, p.PacketsOut, p.PacketsIn)
			}
			t.Fatalf("no echo from the restarted server after %v: %v", time.Since(start), err)
		}
	}
	t.Logf("the client reached the restarted server after %v", time.Since(start))
}
