package nat

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/pion/stun/v4"

	"hipnet.dev/handshake/wire"
)

// Test identities: two ORCHIDv2 HITs and a STUN key.
var (
	hitA    = wire.MustParseHIT("2001:20::a:b:c:1")
	hitB    = wire.MustParseHIT("2001:20::a:b:c:2")
	testKey = []byte("0123456789abcdef")
)

// node is a stand-in for the overlay: one real UDP socket and a read loop
// that hands every STUN packet to the node's Mux.
type node struct {
	t    *testing.T
	pc   *net.UDPConn
	mux  *Mux
	addr netip.AddrPort
	done chan struct{}

	mu    sync.Mutex
	other int // packets that were not STUN or that the Mux refused
}

// newNode listens on network ("udp4", "udp") at address.
func newNode(t *testing.T, network, address string) *node {
	t.Helper()
	ua, err := net.ResolveUDPAddr(network, address)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP(network, ua)
	if err != nil {
		t.Skipf("listen %s %s: %v", network, address, err)
	}
	ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	n := &node{
		t: t, pc: pc, mux: NewMux(),
		addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()),
		done: make(chan struct{}),
	}
	go n.read()
	t.Cleanup(n.close)
	return n
}

func (n *node) read() {
	defer close(n.done)
	buf := make([]byte, 2048)
	for {
		k, from, err := n.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if !stun.IsMessage(buf[:k]) || !n.mux.Deliver(buf[:k], from) {
			n.mu.Lock()
			n.other++
			n.mu.Unlock()
		}
	}
}

func (n *node) send(b []byte, to netip.AddrPort) error {
	_, err := n.pc.WriteToUDPAddrPort(b, to)
	return err
}

func (n *node) close() {
	_ = n.pc.Close()
	<-n.done
}

// result collects a session's callbacks.
type result struct {
	selected chan netip.AddrPort
	failed   chan struct{}
}

func newResult() *result {
	return &result{selected: make(chan netip.AddrPort, 8), failed: make(chan struct{}, 8)}
}

func (r *result) onSelected(a netip.AddrPort) { r.selected <- a }
func (r *result) onFailed()                   { r.failed <- struct{}{} }

// config returns the session config of the node at local checking with
// the peer at remote.
func config(local, peer wire.HIT, controlling bool, n *node, remote ...netip.AddrPort) SessionConfig {
	cfg := SessionConfig{
		LocalHIT: local, PeerHIT: peer, Key: testKey, Controlling: controlling,
		Local: n.addr, Send: n.send,
	}
	for _, r := range remote {
		cfg.Remote = append(cfg.Remote, Candidate{Addr: r, Kind: wire.KindHost})
	}
	return cfg
}
