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
)

// The default node, configured from the environment on first use:
//
//	HIPNET_IDENTITY  key file (created if missing); default
//	                 $XDG_CONFIG_HOME/hipnet/node.key (~/.config/hipnet/node.key)
//	HIPNET_LISTEN    UDP listen address; default ":10500"
//	HIPNET_PEERS     static locators, comma-separated "HIT@host:port"
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
	return NewNode(Config{Identity: id, ListenAddr: os.Getenv("HIPNET_LISTEN"), Peers: peers})
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
