package hipnet

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/hipnet/resolve"
	"hipnet.dev/relay"
)

// TestDialByNameHostsFile: name → HIT (and locator) from a hosts file →
// a stream to the peer, whose RemoteAddr shows the authenticated HIT.
func TestDialByNameHostsFile(t *testing.T) {
	server := newTestNode(t, Config{})
	echoServer(t, server, 8883)
	path := filepath.Join(t.TempDir(), "hosts")
	line := "device42 " + server.HIT().String() + " " + server.LocalAddr().String() + "\n"
	if err := os.WriteFile(path, []byte("# test\n"+line), 0o600); err != nil {
		t.Fatal(err)
	}
	hosts, err := resolve.LoadHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	client := newTestNode(t, Config{Resolver: hosts})
	dialEcho(t, client, "device42:8883", server.HIT(), "by name")
	_, err = client.DialContext(ctxT(t, 2*time.Second), "tcp", "unknown-device:8883")
	if !errors.Is(err, ErrUnknownPeer) || !errors.Is(err, resolve.ErrNotFound) {
		t.Fatalf("unknown name: %v", err)
	}
}

// TestDialByNameDNS: name → HIT through DNS HIP records (RFC 8005) served
// by an in-process DNS server, the locator from the name's A record; a
// record whose host identity does not hash to its HIT is refused, and no
// dial starts.
func TestDialByNameDNS(t *testing.T) {
	sid, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	server := newTestNode(t, Config{Identity: sid})
	echoServer(t, server, 8883)
	other, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	good, err := resolve.NewHIPRR("device42.example.", 60, sid.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	bad, err := resolve.NewHIPRR("forged.example.", 60, other.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	bad.Hit = strings.ToUpper(good.Hit) // the server's HIT, another host's key
	la := server.LocalAddr()
	server53 := serveDNS(t, func(q dns.Question) []dns.RR {
		switch {
		case q.Name == "device42.example." && q.Qtype == dns.TypeHIP:
			return []dns.RR{good}
		case q.Name == "forged.example." && q.Qtype == dns.TypeHIP:
			return []dns.RR{bad}
		case q.Qtype == dns.TypeA:
			return []dns.RR{aRecord(q.Name, la.Addr())}
		}
		return nil
	})
	client := newTestNode(t, Config{Resolver: &resolve.DNS{Server: server53, Port: la.Port()}})

	dialEcho(t, client, "device42.example:8883", server.HIT(), "through DNS")
	_, err = client.DialContext(ctxT(t, 5*time.Second), "tcp", "forged.example:8883")
	if !errors.Is(err, resolve.ErrHITMismatch) {
		t.Fatalf("forged record: %v, want ErrHITMismatch", err)
	}
	t.Logf("forged record refused: %v", err)
}

// echoed writes msg on c and checks it comes back.
func echoed(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo %q: %q %v", msg, buf, err)
	}
}

// TestDialByNameRVS: a DNS HIP record that gives no address for the host
// but names its rendezvous server (RFC 8005 §5, RFC 8004): the client's
// I1 goes to the server, which forwards it to the registered host with
// FROM and RVS_HMAC; the host answers directly, and the stream runs
// between the two hosts.
func TestDialByNameRVS(t *testing.T) {
	rkey, err := hostid.Generate(hostid.ECDSAP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	rvs, err := relay.New(relay.Config{Identity: rkey, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rvs.Close() })
	sid, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	server := newTestNode(t, Config{Identity: sid})
	echoServer(t, server, 8883)
	server.AddPeer(rvs.HIT(), rvs.Addr())
	if _, err := server.stack.Register(ctxT(t, 10*time.Second), rvs.HIT(), time.Hour, wire.RegTypeRendezvous); err != nil {
		t.Fatal(err)
	}

	rec, err := resolve.NewHIPRR("device42.example.", 60, sid.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	rec.RendezvousServers = []string{"rvs.example."}
	server53 := serveDNS(t, func(q dns.Question) []dns.RR {
		switch {
		case q.Name == "device42.example." && q.Qtype == dns.TypeHIP:
			return []dns.RR{rec}
		case q.Name == "rvs.example." && q.Qtype == dns.TypeA:
			return []dns.RR{aRecord(q.Name, rvs.Addr().Addr())}
		}
		return nil // device42 itself has no address records
	})
	client := newTestNode(t, Config{Resolver: &resolve.DNS{Server: server53, RVSPort: rvs.Addr().Port()}})

	dialEcho(t, client, "device42.example:8883", server.HIT(), "through the rendezvous server")
	if n := rvs.Stack().Stats().Relay.Rendezvoused; n == 0 {
		t.Fatal("the I1 did not go through the rendezvous server")
	}
	p, ok := client.WhoIs(server.HIT())
	if !ok || p.Locator != server.LocalAddr() {
		t.Fatalf("the association runs to %v, want the host's own address %v", p.Locator, server.LocalAddr())
	}
}

// TestPeerHosts: Config.PeerHosts takes "host:port" locators, host names
// resolved at NewNode; a name that does not resolve fails NewNode.
func TestPeerHosts(t *testing.T) {
	server := newTestNode(t, Config{})
	echoServer(t, server, 7)
	port := strconv.Itoa(int(server.LocalAddr().Port()))
	client := newTestNode(t, Config{PeerHosts: map[HIT][]string{server.HIT(): {"localhost:" + port}}})
	c, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(server, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoed(t, c, "to localhost")

	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewNode(Config{Identity: id, ListenAddr: "127.0.0.1:0",
		PeerHosts: map[HIT][]string{server.HIT(): {"no-such-host.invalid:10500"}}})
	if err == nil || !strings.Contains(err.Error(), "no-such-host.invalid") {
		t.Fatalf("NewNode with an unresolvable peer host: %v", err)
	}
}

// dialEcho dials address from client, checks that the stream echoes msg
// and that its peer is the HIT want, and closes it.
func dialEcho(t *testing.T, client *Node, address string, want HIT, msg string) {
	t.Helper()
	c, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoed(t, c, msg)
	if got := c.RemoteAddr().(*Addr).HIT; got != want {
		t.Fatalf("RemoteAddr HIT %v, want %v", got, want)
	}
}

// serveDNS runs a DNS server on loopback for the test, answering each
// question with what answer gives, and returns its address.
func serveDNS(t *testing.T, answer func(dns.Question) []dns.RR) string {
	t.Helper()
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = answer(r.Question[0])
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// aRecord is an A record for name.
func aRecord(name string, a netip.Addr) dns.RR {
	return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IP(a.AsSlice())}
}

// TestDialResolverFailed: a dial whose name the resolver cannot look up
// (its DNS server refuses) fails with the dial's *net.OpError, with the
// resolver's error, which names the name, inside. Before, the DNS socket's
// own *net.OpError, found deep in the chain, was returned instead, with
// the caller's network: "dial tcp 127.0.0.1:53: connection refused"
// read as if the peer had refused.
func TestDialResolverFailed(t *testing.T) {
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := dead.LocalAddr().String()
	dead.Close() // nothing answers there: ICMP port unreachable
	client := newTestNode(t, Config{Resolver: &resolve.DNS{Server: server}})
	for _, network := range []string{"tcp", "udp"} {
		_, err := client.DialContext(ctxT(t, 5*time.Second), network, "device.example:8883")
		var oe *net.OpError
		var re *resolve.Error
		if !errors.As(err, &oe) || oe.Op != "dial" || oe.Net != network || !errors.As(err, &re) {
			t.Fatalf("%s: %#v (%v), want the dial's *net.OpError wrapping a *resolve.Error", network, err, err)
		}
		if !strings.Contains(err.Error(), "device.example") {
			// As package net's "dial tcp: lookup name: ...".
			t.Fatalf("%s: %q does not name the name dialed", network, err)
		}
	}
}
