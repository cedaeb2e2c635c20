package hipnet

import (
	"errors"
	"io"
	"net"
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
	c, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", "device42:8883")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoed(t, c, "by name")
	if got := c.RemoteAddr().(*Addr).HIT; got != server.HIT() {
		t.Fatalf("RemoteAddr HIT %v, want %v", got, server.HIT())
	}
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
	mux := dns.NewServeMux()
	mux.HandleFunc("example.", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case q.Name == "device42.example." && q.Qtype == dns.TypeHIP:
			m.Answer = append(m.Answer, good)
		case q.Name == "forged.example." && q.Qtype == dns.TypeHIP:
			m.Answer = append(m.Answer, bad)
		case q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IP(la.Addr().AsSlice())})
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go srv.ActivateAndServe()
	defer srv.Shutdown()
	client := newTestNode(t, Config{Resolver: &resolve.DNS{Server: pc.LocalAddr().String(), Port: la.Port()}})

	c, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", "device42.example:8883")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoed(t, c, "through DNS")
	if got := c.RemoteAddr().(*Addr).HIT; got != server.HIT() {
		t.Fatalf("RemoteAddr HIT %v, want %v", got, server.HIT())
	}
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
	rvsIP := net.IP(rvs.Addr().Addr().AsSlice())
	mux := dns.NewServeMux()
	mux.HandleFunc("example.", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		switch q := r.Question[0]; {
		case q.Name == "device42.example." && q.Qtype == dns.TypeHIP:
			m.Answer = append(m.Answer, rec)
		case q.Name == "rvs.example." && q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: rvsIP})
		}
		w.WriteMsg(m) // device42 itself has no address records
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go srv.ActivateAndServe()
	defer srv.Shutdown()
	client := newTestNode(t, Config{Resolver: &resolve.DNS{Server: pc.LocalAddr().String(), RVSPort: rvs.Addr().Port()}})

	c, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", "device42.example:8883")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoed(t, c, "through the rendezvous server")
	if got := c.RemoteAddr().(*Addr).HIT; got != server.HIT() {
		t.Fatalf("RemoteAddr HIT %v, want %v", got, server.HIT())
	}
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
