package hipnet

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"hipnet.dev/internal/mitm"
	"hipnet.dev/overlay"
	"hipnet.dev/streams"
	"hipnet.dev/streams/netstack"
)

// acceptedPair dials port 9 of server from client and returns both ends
// of the stream, once an octet has crossed it.
func acceptedPair(t *testing.T, client, server *Node) (dialed, accepted net.Conn) {
	t.Helper()
	ln, err := server.Listen("tcp", ":9")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		got <- c
	}()
	dialed, err = client.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(server, 9))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close() })
	if _, err := dialed.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if accepted = <-got; accepted == nil {
		t.Fatal("no accepted stream")
	}
	t.Cleanup(func() { accepted.Close() })
	if _, err := io.ReadFull(accepted, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return dialed, accepted
}

// TestStreamEndErrors: a stream that its peer ends abruptly fails as a
// TCP connection of package net does, on both stream transports: Read
// with ECONNRESET and Write with EPIPE once the peer's node closed; Read
// with io.EOF and then Write with EPIPE once the peer closed the stream.
// Neither is net.ErrClosed, which says this side closed.
func TestStreamEndErrors(t *testing.T) {
	for _, tr := range streamTransports {
		t.Run(tr.name+"/node closed", func(t *testing.T) {
			client, server := pairNodes(t, Config{Streams: tr.f}, Config{Streams: tr.f})
			dialed, _ := acceptedPair(t, client, server)
			server.Close()
			dialed.SetDeadline(time.Now().Add(5 * time.Second))
			_, err := dialed.Read(make([]byte, 1))
			var oe *net.OpError
			if !errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) || oe.Op != "read" {
				t.Errorf("Read: %v, want a *net.OpError wrapping ECONNRESET", err)
			}
			if _, err := dialed.Write([]byte("y")); !errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
				t.Errorf("Write: %v, want EPIPE", err)
			}
		})
		t.Run(tr.name+"/stream closed", func(t *testing.T) {
			client, server := pairNodes(t, Config{Streams: tr.f}, Config{Streams: tr.f})
			dialed, accepted := acceptedPair(t, client, server)
			accepted.Close()
			dialed.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := dialed.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("Read: %v, want io.EOF", err)
			}
			// The peer's refusal of further data (STOP_SENDING, RST)
			// reaches us a round trip after our first Write.
			var err error
			for i := 0; i < 100 && err == nil; i++ {
				_, err = dialed.Write([]byte("y"))
				time.Sleep(5 * time.Millisecond)
			}
			if !errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
				t.Errorf("Write: %v, want EPIPE", err)
			}
		})
	}
}

// departingServer starts a server echoing on port 7 and a client whose
// only path to it is a proxy, both on stream transport f, and returns them
// with a stream from the client that has echoed once.
func departingServer(t *testing.T, f streams.Factory) (client, server *Node, p *mitm.Proxy, warm net.Conn) {
	t.Helper()
	server = newTestNode(t, Config{Streams: f})
	echoServer(t, server, 7)
	p = newMITM(t, server)
	cfg := viaProxy(server, p)
	cfg.Streams = f
	client = newTestNode(t, cfg)
	warm, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(server, 7))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { warm.Close() })
	if err := pingPong(warm); err != nil {
		t.Fatal(err)
	}
	return client, server, p, warm
}

// onlyCloseGetsThrough makes p drop everything toward the server, and the
// server's ESP toward the client: of the server's leaving, the client
// learns only from its HIP CLOSE.
func onlyCloseGetsThrough(p *mitm.Proxy) {
	p.SetHook(func(d *mitm.Datagram) mitm.Verdict {
		if d.Dir == mitm.ToTarget || isESP(d) {
			return mitm.Drop
		}
		return mitm.Pass
	})
}

// TestPeerLeavesBeforeAnswer: a stream dialed as the server's node
// closes, whose first packets never reached the server, fails at once
// with ECONNRESET, rather than retrying into a base exchange with a node
// that is gone and waiting for the context or the deadline: with QUIC,
// the stream Dial returned, on its first Read; with netstack's TCP, the
// Dial waiting for its SYN-ACK. The client's path drops everything toward
// the server, and the server's ESP toward the client, so that only the
// server's HIP CLOSE tells the client it left (overlay's ClosedByPeer).
func TestPeerLeavesBeforeAnswer(t *testing.T) {
	for _, tr := range streamTransports {
		t.Run(tr.name, func(t *testing.T) {
			client, server, p, _ := departingServer(t, tr.f)
			onlyCloseGetsThrough(p)
			type result struct {
				c   net.Conn
				err error
			}
			dialed := make(chan result, 1)
			go func() {
				c, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(server, 7))
				dialed <- result{c, err}
			}()
			time.Sleep(20 * time.Millisecond) // the SYN or the stream's header is lost
			start := time.Now()
			go server.Close() // waits a second for the CLOSE_ACK the path drops
			r := <-dialed
			err := r.err
			if r.c != nil {
				defer r.c.Close()
				r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err = r.c.Read(make([]byte, 1))
			}
			leftAtOnce(t, client, err, start)
		})
	}
}

// leftAtOnce checks err, what a stream of client's got when its server
// left at start: ECONNRESET and ErrPeerLeft (not net.ErrClosed, which
// says this side closed), within 2 s, and no base exchange started to
// redial a peer that is gone.
func leftAtOnce(t *testing.T, client *Node, err error, start time.Time) {
	t.Helper()
	if !errors.Is(err, syscall.ECONNRESET) || !errors.Is(err, ErrPeerLeft) || errors.Is(err, net.ErrClosed) {
		t.Errorf("%v, want ECONNRESET and ErrPeerLeft", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("failed %v after the server closed", d)
	}
	if n := client.stack.Stats().BEX.Started; n != 1 {
		t.Errorf("%d base exchanges started, want 1 (no redial of a peer that left)", n)
	}
}

// TestDialAfterPeerIdleClose: the CLOSED record the peer's CLOSE leaves
// (for minutes: RFC 7401 §4.4.4) does not fail the next Dial, which makes
// a new association: only the CLOSE of an association the Dial saw live
// means the peer left.
func TestDialAfterPeerIdleClose(t *testing.T) {
	for _, tr := range streamTransports {
		t.Run(tr.name, func(t *testing.T) {
			client, server := pairNodes(t, Config{Streams: tr.f},
				Config{Streams: tr.f, IdleTimeout: 800 * time.Millisecond, KeepaliveInterval: 100 * time.Millisecond})
			echoServer(t, server, 7)
			echo := func() {
				c, err := client.DialContext(ctxT(t, 5*time.Second), "tcp", addrOf(server, 7))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if err := pingPong(c); err != nil {
					t.Fatal(err)
				}
			}
			echo()
			if !waitUntil(10*time.Second, func() bool { return client.stack.ClosedByPeer(server.HIT()) }) {
				t.Fatal("the server did not close the idle association")
			}
			echo()
			if n := client.stack.Stats().BEX.Started; n != 2 {
				t.Errorf("%d base exchanges started, want 2", n)
			}
		})
	}
}

// TestNoExchangeWithPeerThatLeft: once the peer's CLOSE has ended the
// association, what is left of a netstack connection with it does not
// start a base exchange with a host that is gone: data written after the
// peer's RST was lost, if the Write came before the connection was reset
// (TestPeerLeavesEstablished), and the reset's own RST. (A new Dial
// does: TestDialAfterPeerIdleClose.)
func TestNoExchangeWithPeerThatLeft(t *testing.T) {
	client, server, p, c := departingServer(t, netstack.Streams)
	onlyCloseGetsThrough(p) // the server's RST is lost
	go server.Close()
	if !waitUntil(5*time.Second, func() bool { return !client.stack.Live(server.HIT()) }) {
		t.Fatal("the server's CLOSE did not arrive")
	}
	if _, err := c.Write([]byte("late")); err != nil && !errors.Is(err, overlay.ErrPeerLeft) {
		t.Fatal(err) // TCP takes it, or the connection was reset already
	}
	time.Sleep(500 * time.Millisecond) // and its first retransmission
	if n := client.stack.Stats().BEX.Started; n != 1 {
		t.Errorf("%d base exchanges started, want 1: the stray segments started one", n)
	}
}

// TestPeerLeavesEstablished: a connection waiting for data from a server
// whose node closes fails at once, with ECONNRESET and
// overlay.ErrPeerLeft, even when the server's own reset of it is lost:
// only the server's HIP CLOSE reaches the client. With netstack's TCP the
// connection would otherwise wait for keep-alive to give up, minutes
// later. A Write then fails with EPIPE, as on a TCP socket after a reset.
func TestPeerLeavesEstablished(t *testing.T) {
	for _, tr := range streamTransports {
		t.Run(tr.name, func(t *testing.T) {
			client, server, p, warm := departingServer(t, tr.f)
			onlyCloseGetsThrough(p)
			read := make(chan error, 1)
			go func() {
				warm.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err := warm.Read(make([]byte, 1))
				read <- err
			}()
			time.Sleep(20 * time.Millisecond) // the Read is waiting
			start := time.Now()
			go server.Close() // waits a second for the CLOSE_ACK the path drops
			leftAtOnce(t, client, <-read, start)
			if _, err := warm.Write([]byte("late")); !errors.Is(err, syscall.EPIPE) || !errors.Is(err, ErrPeerLeft) {
				t.Errorf("Write: %v, want EPIPE and ErrPeerLeft", err)
			}
		})
	}
}

// TestCloseDeliversWritten: what a client wrote to a stream it then
// closed, just before closing its node, all arrives, followed by io.EOF,
// as a kernel's TCP delivers a closed socket's data after the process
// exits; the node's Close does not cut it off.
func TestCloseDeliversWritten(t *testing.T) {
	for _, tr := range streamTransports {
		for _, r := range []struct {
			name  string
			pause time.Duration // between reads of 64 KiB
		}{{"reader keeps up", 0}, {"slow reader", 20 * time.Millisecond}} {
			t.Run(tr.name+"/"+r.name, func(t *testing.T) { closeDelivers(t, tr.f, r.pause) })
		}
	}
}

// closeDelivers writes 1 MiB to a stream, closes it and the node at once,
// and checks that the server, reading 64 KiB at a time with pause
// between, reads all of it and then io.EOF. With a slow reader, part of
// it is in the server's buffers, acknowledged but not read, when the
// client closes: the client must wait for the server to finish with the
// stream, or the connection's close throws that part away.
func closeDelivers(t *testing.T, f streams.Factory, pause time.Duration) {
	client, server := pairNodes(t, Config{Streams: f}, Config{Streams: f})
	ln, err := server.Listen("tcp", ":9")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		n   int
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf, n := make([]byte, 64<<10), 0
		for {
			k, err := c.Read(buf)
			n += k
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				got <- result{n, err}
				return
			}
			time.Sleep(pause)
		}
	}()
	c, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(server, 9))
	if err != nil {
		t.Fatal(err)
	}
	const size = 1 << 20
	if _, err := c.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	client.Close()
	r := <-got
	if r.n != size || r.err != nil {
		t.Fatalf("the server read %d of %d octets, then %v", r.n, size, r.err)
	}
}
