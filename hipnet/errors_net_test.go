package hipnet

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDialErrorsAsPackageNet: a dial error is a *net.OpError whose Net
// is the network the caller passed, whatever layer failed, and whose
// message says each thing once; a refused stream is a *net.OpError of its
// first Read.
func TestDialErrorsAsPackageNet(t *testing.T) {
	client, server := pairNodes(t, Config{}, Config{})
	for _, network := range []string{"tcp", "tcp6", "hip", "udp"} {
		c, err := client.DialContext(ctxT(t, 5*time.Second), network, addrOf(server, 4444)) // no listener
		if network == "udp" {
			continue // connected datagram sockets learn of refusal on write, as in package net
		}
		// The stream is not refused before its first octets went out
		// (Dial does not wait a round trip): the refusal comes on Read,
		// a *net.OpError of the stream layer.
		if err != nil {
			t.Fatalf("%s: Dial: %v", network, err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "read" {
			t.Errorf("%s: %v (%T), want a *net.OpError of read", network, err, err)
		}
		if !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v is not ErrRefused", network, err)
		}
	}
	// A dial error names the caller's network.
	stranger, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for _, network := range []string{"tcp", "tcp6", "hip"} {
		_, err := client.DialContext(ctxT(t, 5*time.Second), network, (&Addr{HIT: stranger.HIT(), Port: 1}).String())
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Net != network || !errors.Is(err, ErrUnknownPeer) {
			t.Errorf("%s: %v (%T), want a *net.OpError with Net %q wrapping ErrUnknownPeer", network, err, err, network)
		}
	}
	dead := deadAddr(t)
	other := newTestNode(t, Config{})
	c := newTestNode(t, Config{Peers: map[HIT][]netip.AddrPort{other.HIT(): {dead}}})
	_, err = c.DialContext(ctxT(t, 500*time.Millisecond), "tcp", addrOf(other, 7))
	var de *DialError
	if !errors.As(err, &de) || !de.Timeout() {
		t.Fatalf("%v (%T) is not a timed-out *DialError", err, err)
	}
	if msg := err.Error(); strings.Count(msg, "hip:") > 1 || strings.Count(msg, "dial") > 1 {
		t.Errorf("message stutters: %q", msg)
	}
	t.Logf("dead locator: %v", err)
}

// TestParseHITError: no internal package name in the message, and
// errors.Is still finds ErrBadHIT.
func TestParseHITError(t *testing.T) {
	_, err := ParseHIT("192.0.2.1")
	if !errors.Is(err, ErrBadHIT) || strings.Contains(err.Error(), "wire") || !strings.HasPrefix(err.Error(), "hipnet: not a HIT") {
		t.Fatalf("ParseHIT error %q", err)
	}
}

// TestListenErrors: Listen and ListenPacket say why, as their doc says.
func TestListenErrors(t *testing.T) {
	n := newTestNode(t, Config{})
	other := newTestNode(t, Config{})
	if _, err := n.Listen("tcp", addrOf(other, 80)); !errors.Is(err, ErrBadHIT) {
		t.Errorf("Listen on another host's HIT: %v", err)
	}
	ln, err := n.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = n.Listen("tcp", ":80")
	var oe *net.OpError
	if !errors.Is(err, ErrPortInUse) || !errors.As(err, &oe) || oe.Net != "tcp" {
		t.Errorf("Listen on a taken port: %v", err)
	}
	if _, err := n.ListenPacket("udp", ":"+strconv.Itoa(StreamPort)); !errors.Is(err, ErrPortInUse) {
		t.Errorf("ListenPacket on the streams' port: %v", err)
	}
}

// TestDialEndedContext: a dial with a context that has already ended
// fails, as a net.Dialer's does, even to a peer whose association is up
// (the "udp" dial's fast path, Ping's too): canceled, or past its
// deadline with a net.Error whose Timeout is true.
func TestDialEndedContext(t *testing.T) {
	client, server := pairNodes(t, Config{}, Config{})
	echoServer(t, server, 7)
	c, err := client.DialContext(ctxT(t, 10*time.Second), "udp", addrOf(server, 9))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	past, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, network := range []string{"udp", "tcp"} {
		port := map[string]int{"udp": 9, "tcp": 7}[network]
		if c, err := client.DialContext(canceled, network, addrOf(server, port)); !errors.Is(err, context.Canceled) {
			if c != nil {
				c.Close()
			}
			t.Errorf("%s, canceled: %v, want context.Canceled", network, err)
		}
		var ne net.Error
		if c, err := client.DialContext(past, network, addrOf(server, port)); !errors.As(err, &ne) || !ne.Timeout() {
			if c != nil {
				c.Close()
			}
			t.Errorf("%s, past deadline: %v, want a timeout", network, err)
		}
	}
	if _, err := client.Ping(canceled, server.HIT(), 1, 0, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Ping, canceled: %v", err)
	}
}
