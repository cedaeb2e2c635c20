package hipnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"hipnet.dev/overlay"
)

// The default node, configured from the environment on first use:
//
//	HIPNET_IDENTITY  key file (created if missing); default
//	                 $XDG_CONFIG_HOME/hipnet/node.key (~/.config/hipnet/node.key)
//	HIPNET_LISTEN    UDP listen address; default ":10500"
//	HIPNET_PEERS     static locators, comma-separated "HIT@host:port"
//	HIPNET_RELAYS    relays, comma-separated "HIT@host:port" or "host:port"
var defaultNode struct {
	once sync.Once
	node *Node
	err  error
}

// Default returns the default node, starting it on first use.
func Default() (*Node, error) {
	defaultNode.once.Do(func() { defaultNode.node, defaultNode.err = nodeFromEnv() })
	return defaultNode.node, defaultNode.err
}

func nodeFromEnv() (*Node, error) {
	path := os.Getenv("HIPNET_IDENTITY")
	if path == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return nil, fmt.Errorf("hipnet: HIPNET_IDENTITY not set and no config directory: %w", err)
		}
		path = filepath.Join(dir, "hipnet", "node.key")
	}
	id, err := LoadOrCreateIdentity(path)
	if err != nil {
		return nil, err
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

// ParseRelay parses a relay of Config.Relays: "HIT@host:port", or
// "host:port" for the opportunistic mode. A host name is resolved now.
func ParseRelay(s string) (overlay.RelayAddr, error) {
	var ra overlay.RelayAddr
	h, a, ok := strings.Cut(strings.TrimSpace(s), "@")
	if !ok {
		a = h
	} else {
		hit, err := ParseHIT(h)
		if err != nil {
			return ra, fmt.Errorf("hipnet: relay %q: %w", s, err)
		}
		ra.HIT = hit
	}
	if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" || port == "0" {
		return ra, fmt.Errorf("hipnet: relay %q: want host:port with a host and a port", s)
	}
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		ua, rerr := net.ResolveUDPAddr("udp", a)
		if rerr != nil {
			return ra, fmt.Errorf("hipnet: relay %q: %w", s, rerr)
		}
		ap = ua.AddrPort()
	}
	ra.Addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return ra, nil
}

// ParsePeers parses a comma-separated list of "HIT@host:port" locators.
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
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return nil, fmt.Errorf("hipnet: peer %q: %w", item, err)
		}
		peers[hit] = append(peers[hit], ap)
	}
	return peers, nil
}

// Dial connects with the default node; see Node.DialContext.
func Dial(network, address string) (net.Conn, error) {
	return DialContext(context.Background(), network, address)
}

// DialContext connects with the default node; see Node.DialContext.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	n, err := Default()
	if err != nil {
		return nil, err
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
