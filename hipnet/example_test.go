package hipnet_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"hipnet.dev/hipnet"
)

// Two nodes on loopback: a server that knows nobody, and a client that
// knows the server's HIT and UDP address.
func startPair() (server, client *hipnet.Node) {
	sid, _ := hipnet.GenerateIdentity()
	server, err := hipnet.NewNode(hipnet.Config{Identity: sid, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	cid, _ := hipnet.GenerateIdentity()
	client, err = hipnet.NewNode(hipnet.Config{
		Identity:   cid,
		ListenAddr: "127.0.0.1:0",
		Peers:      map[hipnet.HIT][]netip.AddrPort{server.HIT(): {server.LocalAddr()}},
	})
	if err != nil {
		log.Fatal(err)
	}
	return server, client
}

func ExampleNewNode() {
	dir, _ := os.MkdirTemp("", "hipnet-example")
	defer os.RemoveAll(dir)
	id, err := hipnet.LoadOrCreateIdentity(filepath.Join(dir, "node.key")) // PEM, mode 0600
	if err != nil {
		log.Fatal(err)
	}
	node, err := hipnet.NewNode(hipnet.Config{Identity: id, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	fmt.Println(node.HIT() == id.HIT(), node.HIT().IsORCHIDv2())
	// Output: true true
}

func ExampleNode_DialContext() {
	server, client := startPair()
	defer server.Close()
	defer client.Close()
	ln, _ := server.Listen("tcp", ":7")
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// The remote address is the client's authenticated HIT.
		fmt.Fprintf(c, "hello, same HIT as dialer: %v", c.RemoteAddr().(*hipnet.Addr).HIT == client.HIT())
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, "tcp", (&hipnet.Addr{HIT: server.HIT(), Port: 7}).String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	fmt.Println(string(b))
	// Output: hello, same HIT as dialer: true
}

func ExampleNode_Listen() {
	server, client := startPair()
	defer server.Close()
	defer client.Close()
	// An HTTP service over HIP: no certificates, the client is
	// authenticated by its HIT.
	ln, _ := server.Listen("tcp", ":80")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := hipnet.ParseAddr(r.RemoteAddr)
		fmt.Fprintf(w, "client authenticated: %v", a.HIT == client.HIT())
	})}
	go srv.Serve(ln)
	defer srv.Close()

	hc := &http.Client{Transport: &http.Transport{DialContext: client.DialContext}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + (&hipnet.Addr{HIT: server.HIT(), Port: 80}).String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(string(b))
	// Output: client authenticated: true
}

func ExampleNode_ListenPacket() {
	server, client := startPair()
	defer server.Close()
	defer client.Close()
	spc, _ := server.ListenPacket("udp", ":5683")
	defer spc.Close()
	go func() {
		buf := make([]byte, 1500)
		n, from, err := spc.ReadFrom(buf) // from is a *hipnet.Addr
		if err == nil {
			spc.WriteTo(buf[:n], from)
		}
	}()

	c, err := client.Dial("udp", (&hipnet.Addr{HIT: server.HIT(), Port: 5683}).String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(buf[:n]))
	// Output: ping
}

// An Addr is a HIT and a port, written `[HIT]:port`.
func ExampleParseAddr() {
	a, err := hipnet.ParseAddr("[2001:2a::1]:8883")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(a.HIT, a.Port, a.Network(), a)
	// Output: 2001:2a::1 8883 hip [2001:2a::1]:8883
}

// A relay named with its HIT is authenticated; one named by its address
// alone is opportunistic: its HIT is learnt from its R1.
func ExampleParseRelay() {
	r, err := hipnet.ParseRelay("2001:2a::1@192.0.2.1:10500")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.HIT, r.Addr, r.Opportunistic())
	o, _ := hipnet.ParseRelay("192.0.2.1:10500")
	fmt.Println(o.HIT.IsZero(), o.Addr, o.Opportunistic())
	fmt.Println(r, o)
	// Output:
	// 2001:2a::1 192.0.2.1:10500 false
	// true 192.0.2.1:10500 true
	// 2001:2a::1@192.0.2.1:10500 192.0.2.1:10500
}

// After a round trip, each node has one association, which it describes
// in Node.Peers and counts in Node.Stats.
func ExampleNode_Peers() {
	server, client := startPair()
	defer server.Close()
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.Ping(ctx, server.HIT(), 1, 64, 5*time.Second); err != nil {
		log.Fatal(err)
	}
	for _, p := range client.Peers() {
		fmt.Println(p.HIT == server.HIT(), p.State, p.Path, p.Locator == server.LocalAddr(), p.Initiator, p.ESPSuite != "")
		fmt.Println("received", p.PacketsIn, "datagram of", p.BytesIn, "octets") // the echo reply
	}
	st := client.Stats()
	fmt.Println("base exchanges:", st.BEX.Started, "started,", st.BEX.Completed, "completed")
	// Output:
	// true ESTABLISHED direct true true true
	// received 1 datagram of 64 octets
	// base exchanges: 1 started, 1 completed
}
