package hipnet

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestParsePeers(t *testing.T) {
	a, _ := GenerateIdentity()
	b, _ := GenerateIdentity()
	s := a.HIT().String() + "@127.0.0.1:10500, " + b.HIT().String() + "@[::1]:1," + a.HIT().String() + "@192.0.2.1:7"
	m, err := ParsePeers(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(m[a.HIT()]) != 2 || m[b.HIT()][0] != netip.MustParseAddrPort("[::1]:1") {
		t.Fatalf("%v", m)
	}
	for _, bad := range []string{"127.0.0.1:1", "2001:db8::1@127.0.0.1:1", a.HIT().String() + "@nohost"} {
		if _, err := ParsePeers(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if m, err := ParsePeers(""); err != nil || len(m) != 0 {
		t.Fatal("empty list")
	}
}

// TestDefaultNode: the package-level functions use a node configured from
// HIPNET_IDENTITY, HIPNET_LISTEN and HIPNET_PEERS.
func TestDefaultNode(t *testing.T) {
	server := newTestNode(t, Config{})
	echoServer(t, server, 7)
	key := filepath.Join(t.TempDir(), "node.key")
	t.Setenv("HIPNET_IDENTITY", key)
	t.Setenv("HIPNET_LISTEN", "127.0.0.1:0")
	t.Setenv("HIPNET_PEERS", server.HIT().String()+"@"+server.LocalAddr().String())
	// The default node is made once per process: start from none, and
	// leave none behind, so that every run (-count > 1 included) checks
	// that it is configured from this environment.
	resetDefault()
	t.Cleanup(resetDefault)
	d, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	id, err := LoadIdentity(key)
	if err != nil {
		t.Fatalf("HIPNET_IDENTITY was not created: %v", err)
	}
	c, err := DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(server, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q %v", buf, err)
	}
	if c.LocalAddr().(*Addr).HIT != id.HIT() || d.HIT() != id.HIT() {
		t.Fatal("the default node does not use HIPNET_IDENTITY")
	}
	if c.LocalAddr().(*Addr).HIT != d.HIT() {
		t.Fatal("package-level DialContext did not use the default node")
	}
	ln, err := Listen("tcp", ":9")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	pc, err := ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	pc.Close()
}

func TestParseRelay(t *testing.T) {
	h := "2001:20::1"
	for _, c := range []struct {
		in    string
		ok    bool
		isHIT bool
	}{
		{h + "@127.0.0.1:10500", true, true},
		{"127.0.0.1:10500", true, false},
		{"[::1]:10500", true, false},
		{h + "@", false, false},
		{h + "@:10500", false, false},
		{"127.0.0.1", false, false},
		{"127.0.0.1:0", false, false},
		{"nonsense@127.0.0.1:1", false, false},
	} {
		ra, err := ParseRelay(c.in)
		if (err == nil) != c.ok || (err == nil && ra.HIT.IsZero() == c.isHIT) {
			t.Errorf("ParseRelay(%q) = %+v, %v", c.in, ra, err)
		}
	}
}

// resetDefault closes the package's default node, if any, so that the next
// Default makes a new one from the environment.
func resetDefault() {
	if defaultNode.done != nil {
		<-defaultNode.done
	}
	if defaultNode.node != nil {
		defaultNode.node.Close()
	}
	defaultNode.node, defaultNode.err = nil, nil
	defaultNode.once, defaultNode.done = sync.Once{}, nil
}

// TestDefaultDialContext: the package-level DialContext gives up when its
// context ends while the default node is still starting (names in
// HIPNET_PEERS can take seconds to resolve), and a later call finds the
// node started.
func TestDefaultDialContext(t *testing.T) {
	resetDefault()
	t.Cleanup(resetDefault)
	release := make(chan struct{})
	t.Cleanup(func() { startDefault = nodeFromEnv })
	startDefault = func() (*Node, error) {
		<-release
		return nil, errors.New("start failed")
	}
	start := time.Now()
	_, err := DialContext(ctxT(t, 100*time.Millisecond), "tcp", "[2001:20::1]:7")
	var oe *net.OpError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &oe) || time.Since(start) > 2*time.Second {
		t.Fatalf("while starting: %v after %v, want the dial's context.DeadlineExceeded at once", err, time.Since(start))
	}
	close(release)
	if _, err := DialContext(context.Background(), "tcp", "[2001:20::1]:7"); err == nil || err.Error() != "dial tcp [2001:20::1]:7: start failed" {
		t.Fatalf("after the start: %v, want its error", err)
	}
}
