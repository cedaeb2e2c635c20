package hipnet

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
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
