package hiphttp_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"hipnet.dev/hipnet"
	"hipnet.dev/hipnet/hiphttp"
)

// The handler sees the client's HIT, and the port of its end, which is
// the port r.RemoteAddr shows; an explicit port in the URL works too.
func TestPeerHIT(t *testing.T) {
	server, client := newNode(t), newNode(t)
	knows(client, server)
	type seen struct {
		addr       *hipnet.Addr
		remoteAddr string
	}
	seenc := make(chan seen, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := hiphttp.PeerAddr(r)
		if a != nil {
			a.Port = -1 // a copy: the next caller is not affected
		}
		a, _ = hiphttp.PeerAddr(r)
		seenc <- seen{a, r.RemoteAddr}
		whoAmI(w, r)
	})
	serve(t, server, hiphttp.Server(server, h))

	for _, url := range []string{urlOf(server), "http://[" + server.HIT().String() + "]:80/x?y=1"} {
		code, body := get(t, client, url)
		if code != http.StatusOK || body != client.HIT().String() {
			t.Fatalf("%s: %d %q, want 200 and the client's HIT %v", url, code, body, client.HIT())
		}
		s := <-seenc
		if s.addr == nil || s.addr.HIT != client.HIT() || s.addr.String() != s.remoteAddr {
			t.Fatalf("%s: PeerAddr %v, r.RemoteAddr %q", url, s.addr, s.remoteAddr)
		}
	}
}

// RequirePeer serves the allowed client and answers 403 to a node the
// base exchange authenticated but the application did not allow.
func TestRequirePeer(t *testing.T) {
	server, client, stranger := newNode(t), newNode(t), newNode(t)
	knows(client, server)
	knows(stranger, server)
	allowed := func(h hipnet.HIT) bool { return h == client.HIT() }
	serve(t, server, hiphttp.Server(server, hiphttp.RequirePeer(allowed, whoAmI)))

	if code, body := get(t, client, urlOf(server)); code != http.StatusOK || body != client.HIT().String() {
		t.Fatalf("allowed client: %d %q", code, body)
	}
	if code, _ := get(t, stranger, urlOf(server)); code != http.StatusForbidden {
		t.Fatalf("stranger: %d, want 403", code)
	}
}

// Without ConnContext, PeerHIT is false, though r.RemoteAddr reads like a
// HIT; RequirePeer then refuses everyone, and so does a nil allow
// function.
func TestNoConnContext(t *testing.T) {
	server, client := newNode(t), newNode(t)
	knows(client, server)
	mux := http.NewServeMux()
	mux.Handle("/", whoAmI)
	mux.HandleFunc("/remote", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) })
	mux.Handle("/require", hiphttp.RequirePeer(func(hipnet.HIT) bool { return true }, whoAmI))
	serve(t, server, &http.Server{Handler: mux})

	if code, body := get(t, client, urlOf(server)); code != http.StatusOK || body != "none" {
		t.Fatalf("%d %q, want 200 none", code, body)
	}
	if _, ra := get(t, client, urlOf(server)+"remote"); !strings.HasPrefix(ra, "["+client.HIT().String()+"]:") {
		t.Fatalf("r.RemoteAddr %q, want the client's HIT in text", ra)
	}
	if code, _ := get(t, client, urlOf(server)+"require"); code != http.StatusForbidden {
		t.Fatalf("RequirePeer without ConnContext: %d, want 403", code)
	}

	other := newNode(t)
	knows(client, other)
	serve(t, other, hiphttp.Server(other, hiphttp.RequirePeer(nil, whoAmI)))
	if code, _ := get(t, client, urlOf(other)); code != http.StatusForbidden {
		t.Fatalf("nil allow: %d, want 403", code)
	}
}

// Transport never dials plain TCP: a URL whose host is not a HIT fails,
// and a TCP listener at that address hears nothing.
func TestTransportOnlyHIP(t *testing.T) {
	client := newNode(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()
	hc := &http.Client{Transport: hiphttp.Transport(client), Timeout: 5 * time.Second}
	for _, url := range []string{"http://" + ln.Addr().String() + "/", "http://localhost/"} {
		if resp, err := hc.Get(url); err == nil {
			resp.Body.Close()
			t.Fatalf("%s: fetched over plain TCP", url)
		}
	}
	select {
	case <-accepted:
		t.Fatal("the TCP listener was dialed")
	case <-time.After(50 * time.Millisecond):
	}
}

// ConnPeerHIT names a hipnet connection's peer and nothing for TCP.
func TestConnPeerHIT(t *testing.T) {
	server, client := newNode(t), newNode(t)
	knows(client, server)
	ln, err := server.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	c, err := client.Dial("tcp", "["+server.HIT().String()+"]:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h, ok := hiphttp.ConnPeerHIT(c); !ok || h != server.HIT() {
		t.Fatalf("client side: %v %v", h, ok)
	}
	s := <-accepted
	defer s.Close()
	if h, ok := hiphttp.ConnPeerHIT(s); !ok || h != client.HIT() {
		t.Fatalf("server side: %v %v", h, ok)
	}

	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	tc, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, ok := hiphttp.ConnPeerHIT(tc); ok {
		t.Fatal("a TCP connection has a HIT")
	}
}

// HTTP/2 without TLS (h2c, set on both ends) runs over a hipnet stream,
// and ConnContext still names the peer.
func TestUnencryptedHTTP2(t *testing.T) {
	server, client := newNode(t), newNode(t)
	knows(client, server)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := hiphttp.Server(server, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, r.Proto, http.StatusHTTPVersionNotSupported)
			return
		}
		whoAmI(w, r)
	}))
	srv.Protocols = &p
	serve(t, server, srv)

	tr := hiphttp.Transport(client)
	tr.Protocols = &p
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(urlOf(server))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(b) != client.HIT().String() {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
}

// Server's Addr is the node's HIT, so that ListenAndServe, which would
// listen on plain TCP, cannot bind on a host without that address.
func TestServerAddr(t *testing.T) {
	n := newNode(t)
	srv := hiphttp.Server(n, whoAmI)
	if want := "[" + n.HIT().String() + "]:80"; srv.Addr != want {
		t.Fatalf("Addr %q, want %q", srv.Addr, want)
	}
	ln, err := net.Listen("tcp", srv.Addr) // what ListenAndServe does first
	if err == nil {
		ln.Close()
		t.Skip("this host has the HIT as an address")
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Fatalf("%v", err)
	}
}
