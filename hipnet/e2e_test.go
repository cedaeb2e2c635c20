package hipnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"hipnet.dev/streams"
)

// End-to-end tests over real loopback UDP sockets.

// TestStreamEcho8MiB: 8 MiB echoed intact on each stream transport (on
// netstack through the overlay's receive batches and their coalescing).
func TestStreamEcho8MiB(t *testing.T) {
	for _, tr := range streamTransports {
		t.Run(tr.name, func(t *testing.T) { streamEcho8MiB(t, tr.f) })
	}
}

func streamEcho8MiB(t *testing.T, f streams.Factory) {
	client, server := pairNodes(t, Config{Streams: f}, Config{Streams: f})
	echoServer(t, server, 7)
	c, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(server, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ra := c.RemoteAddr().(*Addr); ra.HIT != server.HIT() || ra.Port != 7 || ra.Network() != "hip" {
		t.Fatalf("RemoteAddr %v", ra)
	}
	data := randomBytes(1, 8<<20)
	go func() {
		c.Write(data)
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo differs: %d of %d octets", len(got), len(data))
	}
	ps := client.Peers()
	if len(ps) != 1 || ps[0].HIT != server.HIT() || ps[0].BytesOut < 8<<20 || ps[0].BytesIn < 8<<20 {
		t.Fatalf("Peers: %+v", ps)
	}
}

func TestConcurrentStreams(t *testing.T) {
	client, server := pairNodes(t, Config{}, Config{})
	echoServer(t, server, 9)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.DialContext(ctxT(t, 20*time.Second), "tcp", addrOf(server, 9))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			data := randomBytes(uint64(i), 64<<10)
			go c.Write(data)
			got := make([]byte, len(data))
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, data) {
				errs <- fmt.Errorf("stream %d differs", i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := len(client.Peers()); n != 1 {
		t.Fatalf("%d associations, want 1", n)
	}
}

func TestDatagrams(t *testing.T) {
	client, server := pairNodes(t, Config{}, Config{})
	spc := listenPacket(t, server, ":5683")
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := spc.ReadFrom(buf)
			if err != nil {
				return
			}
			if from.(*Addr).HIT != client.HIT() {
				spc.WriteTo([]byte("wrong sender"), from)
				continue
			}
			spc.WriteTo(buf[:n], from)
		}
	}()
	cpc := listenPacket(t, client, ":0")
	dst := &Addr{HIT: server.HIT(), Port: 5683}
	if err := client.stack.Connect(ctxT(t, 10*time.Second), server.HIT()); err != nil {
		t.Fatal(err)
	}
	got := map[int]bool{}
	buf := make([]byte, 2048)
	for size := 1; size <= 1200; size += 4 { // 300 datagrams
		msg := randomBytes(uint64(size), size)
		for attempt := 0; ; attempt++ {
			if _, err := cpc.WriteTo(msg, dst); err != nil {
				t.Fatal(err)
			}
			cpc.SetReadDeadline(time.Now().Add(time.Second))
			n, from, err := cpc.ReadFrom(buf)
			if err == nil {
				if from.(*Addr).HIT != server.HIT() || from.(*Addr).Port != 5683 || !bytes.Equal(buf[:n], msg) {
					t.Fatalf("size %d: echo %q from %v", size, buf[:min(n, 16)], from)
				}
				got[size] = true
				break
			}
			if attempt == 2 {
				t.Fatalf("size %d: %v", size, err)
			}
		}
	}
	if len(got) != 300 {
		t.Fatalf("%d datagrams echoed", len(got))
	}
}

func TestDialWrongKeyAtLocator(t *testing.T) {
	client := newTestNode(t, Config{})
	impostor := newTestNode(t, Config{})
	real, _ := GenerateIdentity()
	client.AddPeer(real.HIT(), impostor.LocalAddr())
	_, err := client.DialContext(ctxT(t, 3*time.Second), "tcp", (&Addr{HIT: real.HIT(), Port: 1}).String())
	if err == nil {
		t.Fatal("dial to a HIT whose locator holds another key succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrHandshakeTimeout) && !errors.Is(err, ErrHandshakeFailed) {
		t.Fatalf("error %v", err)
	}
	if len(impostor.Peers()) != 0 {
		t.Fatal("the impostor associated")
	}
}

func TestUnauthorizedPeer(t *testing.T) {
	client, server := pairNodes(t, Config{}, Config{Authorize: func(HIT) bool { return false }})
	ln, err := server.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	spc, _ := server.ListenPacket("udp", ":81")
	defer spc.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	got := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 100)
		if _, _, err := spc.ReadFrom(buf); err == nil {
			got <- struct{}{}
		}
	}()
	_, err = client.DialContext(ctxT(t, 5*time.Second), "tcp", addrOf(server, 80))
	if !errors.Is(err, ErrNotAuthorized) && !errors.Is(err, ErrHandshakeFailed) && !errors.Is(err, ErrHandshakeTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial error %v", err)
	}
	cpc, _ := client.ListenPacket("udp", ":0")
	defer cpc.Close()
	cpc.WriteTo([]byte("let me in"), &Addr{HIT: server.HIT(), Port: 81})
	select {
	case <-accepted:
		t.Fatal("unauthorized stream accepted")
	case <-got:
		t.Fatal("unauthorized datagram delivered")
	case <-time.After(500 * time.Millisecond):
	}
	if len(server.Peers()) != 0 {
		t.Fatalf("server associated with an unauthorized peer: %+v", server.Peers())
	}
}

// TestRefusedPort: a stream to a port with no listener is refused with
// ErrRefused, on each stream transport: QUIC's Dial returns at once and
// the refusal comes on the first Read; netstack's TCP gets the RST in
// Dial.
func TestRefusedPort(t *testing.T) {
	for _, tr := range streamTransports {
		t.Run(tr.name, func(t *testing.T) {
			client, server := pairNodes(t, Config{Streams: tr.f}, Config{Streams: tr.f})
			echoServer(t, server, 7) // a listener elsewhere
			refused := func() error {
				c, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(server, 8))
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err = c.Read(make([]byte, 1))
				return err
			}
			if err := refused(); !errors.Is(err, ErrRefused) {
				t.Fatalf("error %v, want ErrRefused", err)
			}
			// The first dial includes the base exchange; a second one is
			// the refusal alone.
			start := time.Now()
			err := refused()
			if !errors.Is(err, ErrRefused) || time.Since(start) > 2*time.Second {
				t.Fatalf("error %v after %v", err, time.Since(start))
			}
			var oe *net.OpError
			if !errors.As(err, &oe) || (oe.Op != "read" && oe.Op != "dial") {
				t.Fatalf("not a *net.OpError of dial or read: %T %v", err, err)
			}
		})
	}
}

func TestUnknownHIT(t *testing.T) {
	client := newTestNode(t, Config{})
	stranger, _ := GenerateIdentity()
	for _, tr := range streamTransports {
		// netstack runs the base exchange beside its SYN: the overlay's
		// error must still be the one the Dial returns.
		c := client
		if tr.f != nil {
			c = newTestNode(t, Config{Streams: tr.f})
		}
		_, err := c.DialContext(ctxT(t, 5*time.Second), "tcp", (&Addr{HIT: stranger.HIT(), Port: 1}).String())
		var oe *net.OpError
		if !errors.Is(err, ErrUnknownPeer) || !errors.As(err, &oe) || oe.Op != "dial" || oe.Net != "tcp" {
			t.Fatalf("%s: error %v (%T), want ErrUnknownPeer in a dial *net.OpError", tr.name, err, err)
		}
	}
	if _, err := client.Dial("tcp", "[::1]:80"); err == nil {
		t.Fatal("dial to a non-HIT address succeeded")
	}
	if _, err := client.Dial("sctp", addrOf(client, 1)); err == nil {
		t.Fatal("unknown network accepted")
	}
}

// TestDialRefusedByPeer: a server whose Authorize refuses the client
// turns its I2 away, after the client has keyed the exchange and (with
// QUIC) queued its first flight. The Dial reports ErrNotAuthorized on both
// transports, not the stream layer's own failure.
func TestDialRefusedByPeer(t *testing.T) {
	for _, tr := range streamTransports {
		refuse := func(HIT) bool { return false }
		client, server := pairNodes(t, Config{Streams: tr.f}, Config{Streams: tr.f, Authorize: refuse})
		_, err := client.DialContext(ctxT(t, 5*time.Second), "tcp", addrOf(server, 7))
		if !errors.Is(err, ErrNotAuthorized) {
			t.Errorf("%s: dial to a peer that refuses us: %v, want ErrNotAuthorized", tr.name, err)
		}
	}
}

// TestSpray: a stream stays byte-exact while the node's port receives
// random bytes, fake HIP control packets and fake ESP.
func TestSpray(t *testing.T) {
	client, server := pairNodes(t, Config{}, Config{})
	echoServer(t, server, 7)
	c, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(server, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, target := range []*Node{client, server} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spray(t, target.LocalAddr(), stop)
		}()
	}
	data := randomBytes(7, 2<<20)
	go func() {
		c.Write(data)
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	close(stop)
	wg.Wait()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stream under spray: %v, %d of %d octets equal", err, len(got), len(data))
	}
	if len(server.Peers()) != 1 || len(client.Peers()) != 1 {
		t.Fatal("spray changed the associations")
	}
}

func spray(t *testing.T, target netip.AddrPort, stop chan struct{}) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(target))
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close()
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		select {
		case <-stop:
			return
		default:
		}
		b := make([]byte, 1+r.IntN(1400))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		switch i % 4 {
		case 1: // fake HIP control: zero marker and a HIPv2 header
			if len(b) >= 44 {
				copy(b, []byte{0, 0, 0, 0, 59, byte((len(b)-4)/8 - 1), byte(1 + r.IntN(4)), 0x21})
			}
		case 2: // fake ESP with small SPIs
			if len(b) >= 8 {
				copy(b, []byte{0, 0, 1, byte(r.Uint32())})
			}
		}
		conn.Write(b)
		if i%64 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

func TestHTTPOverHIP(t *testing.T) {
	client, server := pairNodes(t, Config{}, Config{})
	ln, err := server.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	// As in the README's tour: the URL names the server by HIT alone (port
	// 80 by default), the handler reads the client's HIT from RemoteAddr.
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, _ := ParseAddr(r.RemoteAddr)
		fmt.Fprintf(w, "hello %v", peer.HIT)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{DialContext: client.DialContext}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://[" + server.HIT().String() + "]/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello "+client.HIT().String() {
		t.Fatalf("server saw %q, want the client's HIT %v", body, client.HIT())
	}
}

func TestReadDeadline(t *testing.T) {
	client, server := pairNodes(t, Config{}, Config{})
	echoServer(t, server, 7)
	c, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(server, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stream read: %v", err)
	}
	pc, _ := client.ListenPacket("udp", ":0")
	defer pc.Close()
	pc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, _, err = pc.ReadFrom(make([]byte, 1))
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("datagram read: %v", err)
	}
	// Context cancellation bounds a dial.
	stranger, _ := GenerateIdentity()
	client.AddPeer(stranger.HIT(), netip.MustParseAddrPort("127.0.0.1:9"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := client.DialContext(ctx, "tcp", (&Addr{HIT: stranger.HIT(), Port: 1}).String()); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("dial with deadline: %v after %v", err, time.Since(start))
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		client, server := pairNodes(t, Config{}, Config{})
		echoServer(t, server, 7)
		c, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(server, 7))
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		io.ReadFull(c, make([]byte, 1))
		c.Close()
		if err := client.Close(); err != nil {
			t.Fatal(err)
		}
		server.Close()
		if _, err := client.Dial("tcp", addrOf(server, 7)); !errors.Is(err, ErrClosed) {
			t.Fatalf("dial after close: %v", err)
		}
	}()
	settleGoroutines(t, base)
}

// TestLossyLink: 10% loss, duplication and reordering between the nodes;
// the BEX completes by retransmission and streams stay byte-exact.
func TestLossyLink(t *testing.T) {
	if testing.Short() {
		t.Skip("slow under loss")
	}
	sc := newLossy(t, 1, 0.10, 0.05, 0.05)
	cc := newLossy(t, 2, 0.10, 0.05, 0.05)
	client, server := pairNodes(t, Config{PacketConn: cc}, Config{PacketConn: sc})
	echoServer(t, server, 7)
	c, err := client.DialContext(ctxT(t, 60*time.Second), "tcp", addrOf(server, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := randomBytes(9, 1<<20)
	go func() {
		c.Write(data)
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("lossy stream: %v, got %d of %d", err, len(got), len(data))
	}
}
