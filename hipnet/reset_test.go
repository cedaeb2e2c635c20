package hipnet

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"hipnet.dev/internal/mitm"
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

// TestPeerLeavesBeforeAnswer: a stream dialed on an open QUIC connection
// whose header never reached the server (its path to the server is down)
// fails at once with ECONNRESET when the server's node closes, rather
// than redialing a node that is gone and waiting out a base exchange.
// Only the server's HIP CLOSE reaches the client, not its QUIC
// CONNECTION_CLOSE: the client learns that the peer left from the
// association alone (overlay's ClosedByPeer).
func TestPeerLeavesBeforeAnswer(t *testing.T) {
	server := newTestNode(t, Config{})
	echoServer(t, server, 7)
	p := newMITM(t, server)
	client := newTestNode(t, viaProxy(server, p))
	warm, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(server, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer warm.Close()
	if err := pingPong(warm); err != nil {
		t.Fatal(err)
	}

	p.SetHook(func(d *mitm.Datagram) mitm.Verdict {
		if d.Dir == mitm.ToTarget || isESP(d) {
			return mitm.Drop
		}
		return mitm.Pass
	})
	c, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(server, 7))
	if err != nil {
		t.Fatal(err) // on an open connection, Dial waits for nothing
	}
	defer c.Close()
	server.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("Read: %v, want ECONNRESET", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Read failed after %v", d)
	}
	if n := client.stack.Stats().BEX.Started; n != 1 {
		t.Errorf("%d base exchanges started, want 1 (no redial of a peer that left)", n)
	}
}
