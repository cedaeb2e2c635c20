package hipnet

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"hipnet.dev/overlay"
)

// defaultNode is the node of Default and of the package-level Dial,
// DialContext, Listen and ListenPacket.
var defaultNode struct {
	once sync.Once
	done chan struct{} // closed once node and err are set
	node *Node
	err  error
}

// Default returns the default node, which the package-level Dial,
// DialContext, Listen and ListenPacket use. The first call starts it,
// configured from the environment; it is never closed:
//
//	HIPNET_IDENTITY  the identity's key file, created with its directory
//	                 (ECDSA P-256, mode 0600) if missing; default
//	                 hipnet/node.key in os.UserConfigDir, that is
//	                 $XDG_CONFIG_HOME/hipnet/node.key or
//	                 ~/.config/hipnet/node.key on Linux
//	HIPNET_LISTEN    the UDP address of Config.ListenAddr; default ":10500"
//	HIPNET_PEERS     static locators (Config.Peers), comma-separated
//	                 "HIT@host:port" entries as ParsePeers reads them,
//	                 host an IP address or a name
//	HIPNET_RELAYS    relays (Config.Relays), comma-separated "HIT@host:port"
//	                 or "host:port" entries as ParseRelay reads them
//
// Any other Config field has its zero value. If starting fails, Default
// returns that error, then and on every later call.
func Default() (*Node, error) { return defaultCtx(context.Background()) }

// defaultCtx is Default for a caller with a context: the start, which may
// resolve names (HIPNET_PEERS, HIPNET_RELAYS), goes on in the background
// when ctx ends first, and a later call finds its outcome.
func defaultCtx(ctx context.Context) (*Node, error) {
	defaultNode.once.Do(func() {
		defaultNode.done = make(chan struct{})
		go func() {
			defaultNode.node, defaultNode.err = startDefault()
			close(defaultNode.done)
		}()
	})
	select {
	case <-defaultNode.done:
		return defaultNode.node, defaultNode.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startDefault makes the default node (a variable for tests).
var startDefault = nodeFromEnv

func nodeFromEnv() (*Node, error) {
	path := os.Getenv("HIPNET_IDENTITY")
	if path == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return nil, fmt.Errorf("hipnet: HIPNET_IDENTITY not set and no config directory: %w", err)
		}
		path = filepath.Join(dir, "hipnet", "node.key")
	}
	id, created, err := EnsureIdentity(path)
	if err != nil {
		return nil, err
	}
	if created {
		// A new key is a new HIT: whoever knew this node by its old one
		// no longer reaches it, so say where it went.
		slog.Default().Info("hipnet: created a new host identity", "path", path, "hit", id.HIT().String())
	}
	peers, err := ParsePeers(os.Getenv("HIPNET_PEERS"))
	if err != nil {
		return nil, err
	}
	var relays []string
	for _, r := range strings.Split(os.Getenv("HIPNET_RELAYS"), ",") {
		if r = strings.TrimSpace(r); r != "" {
			relays = append(relays, r)
		}
	}
	return NewNode(Config{Identity: id, ListenAddr: os.Getenv("HIPNET_LISTEN"), Peers: peers, Relays: relays})
}

// ParsePeers parses a comma-separated list of "HIT@host:port" locators,
// as HIPNET_PEERS holds them; a HIT may appear more than once. host is an
// IP address, or a name that the system resolver turns into one locator
// per address (each lookup bounded by 5 s).
func ParsePeers(s string) (map[HIT][]netip.AddrPort, error) {
	peers := map[HIT][]netip.AddrPort{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		h, a, ok := strings.Cut(item, "@")
		if !ok {
			return nil, fmt.Errorf("hipnet: peer %q: want HIT@host:port", item)
		}
		hit, err := ParseHIT(h)
		if err != nil {
			return nil, fmt.Errorf("hipnet: peer %q: %w", item, err)
		}
		aps, err := lookupLocator(a)
		if err != nil {
			return nil, fmt.Errorf("hipnet: peer %q: %w", item, err)
		}
		peers[hit] = append(peers[hit], aps...)
	}
	return peers, nil
}

// addPeerHosts resolves Config.PeerHosts into st's locators.
func addPeerHosts(st *overlay.Stack, hosts map[HIT][]string) error {
	for hit, hs := range hosts {
		for _, h := range hs {
			aps, err := lookupLocator(h)
			if err != nil {
				return fmt.Errorf("hipnet: peer %v at %q: %w", hit, h, err)
			}
			st.AddPeer(hit, aps...)
		}
	}
	return nil
}

// peerLookupTimeout bounds the name lookup of one ParsePeers locator.
const peerLookupTimeout = 5 * time.Second

// lookupLocator parses "ip:port", or resolves "host:port" with the system
// resolver into one locator per address (IPv6 first, as the resolver
// orders them): a dial tries them in turn (Happy Eyeballs).
func lookupLocator(s string) ([]netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return []netip.AddrPort{ap}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return nil, err
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil || pn == 0 {
		return nil, fmt.Errorf("bad port %q", port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), peerLookupTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(pn)))
	}
	return out, nil
}

// Dial connects with the default node; see Node.DialContext.
func Dial(network, address string) (net.Conn, error) {
	return DialContext(context.Background(), network, address)
}

// DialContext connects with the default node; see Node.DialContext.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	n, err := defaultCtx(ctx)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: addrOrNil(address), Err: err}
	}
	return n.DialContext(ctx, network, address)
}

// Listen accepts streams on the default node; see Node.Listen.
func Listen(network, address string) (net.Listener, error) {
	n, err := Default()
	if err != nil {
		return nil, err
	}
	return n.Listen(network, address)
}

// ListenPacket opens a datagram endpoint on the default node; see
// Node.ListenPacket.
func ListenPacket(network, address string) (net.PacketConn, error) {
	n, err := Default()
	if err != nil {
		return nil, err
	}
	return n.ListenPacket(network, address)
}
