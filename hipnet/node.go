package hipnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/hipnet/resolve"
	"hipnet.dev/internal/netmon"
	"hipnet.dev/overlay"
	"hipnet.dev/streams"
)

// StreamPort is the inner UDP port that carries the node's QUIC
// connections; it is reserved and cannot be bound with ListenPacket.
const StreamPort = 65535

// Node is one host: its identity, its UDP socket, its associations with
// peers, and the connections over them. A Node is safe for concurrent use.
type Node struct {
	stack   *overlay.Stack
	streams streams.Transport
	addrs   *netmon.Monitor // nil: not watching (mobility.go)
	names   resolve.Resolver

	closeOnce sync.Once
	closeErr  error
}

// NewNode starts a node: it opens the UDP socket and is ready to dial and
// accept at once.
func NewNode(cfg Config) (*Node, error) { return newNode(cfg, handshake.Config{}) }

// newNode is NewNode with the handshake's own settings (puzzle, timers,
// ENCRYPTED HOST_ID), which tests tune.
func newNode(cfg Config, hs handshake.Config) (*Node, error) {
	if cfg.Identity == nil {
		return nil, errors.New("hipnet: Config.Identity is required")
	}
	listen := cfg.ListenAddr
	if listen == "" {
		listen = ":" + strconv.Itoa(DefaultPort)
	}
	var authorize func(wire.HIT) bool
	if cfg.Authorize != nil {
		authorize = func(h wire.HIT) bool { return cfg.Authorize(h) }
	}
	relays := make([]overlay.RelayAddr, 0, len(cfg.Relays))
	for _, r := range cfg.Relays {
		ra, err := ParseRelay(r)
		if err != nil {
			return nil, err
		}
		relays = append(relays, ra.relayAddr())
	}
	mon := watchAddrs(cfg, listen)
	var watch overlay.AddrWatcher
	if mon != nil {
		watch = mon
	}
	st, err := overlay.New(overlay.Config{
		Relays:            relays,
		KeepaliveInterval: cfg.KeepaliveInterval,
		IdleTimeout:       cfg.IdleTimeout,
		WatchAddrs:        watch,
		Identity:          cfg.Identity.key,
		ListenAddr:        listen,
		PacketConn:        cfg.PacketConn,
		Authorize:         authorize,
		Logger:            cfg.Logger,
		KeyLog:            cfg.KeyLog,
		STUNServer:        cfg.STUNServer,
		Handshake:         hs,
	})
	if err != nil {
		closeWatch(mon)
		return nil, err
	}
	for hit, addrs := range cfg.Peers {
		st.AddPeer(hit, addrs...)
	}
	if err := addPeerHosts(st, cfg.PeerHosts); err != nil {
		st.Close()
		closeWatch(mon)
		return nil, err
	}
	sm, err := newStreams(cfg, st)
	if err != nil {
		st.Close()
		closeWatch(mon)
		return nil, err
	}
	if cfg.Logger != nil {
		cfg.Logger.Info("hipnet: node started", "hit", st.HIT().String(), "listen", st.LocalAddr(),
			"relays", len(relays), "peers", len(cfg.Peers), "watch_addrs", mon != nil)
	}
	return &Node{stack: st, streams: sm, addrs: mon, names: cfg.Resolver}, nil
}

// newStreams starts the node's stream transport: cfg.Streams', or QUIC on
// the reserved inner port StreamPort, keyed from the associations.
func newStreams(cfg Config, st *overlay.Stack) (streams.Transport, error) {
	if cfg.Streams != nil {
		return cfg.Streams(streams.Env{Link: segmentLink{st}, Associate: st.Connect, Logger: cfg.Logger})
	}
	pc, err := st.ListenInner(StreamPort)
	if err != nil {
		return nil, err
	}
	sm, err := streams.New(pc, st.HIT(), streams.Config{
		Identity:       cfg.Identity.key,
		PeerIdentity:   func(h wire.HIT) (*hostid.PublicKey, bool) { return st.PeerIdentity(h) },
		Secret:         st.AssociationSecret,
		Associate:      st.Connect,
		AssociateKeyed: st.ConnectKeyed,
		Logger:         cfg.Logger,
	})
	if err != nil {
		pc.Close()
		return nil, err
	}
	return sm, nil
}

// segmentLink is the stack as a streams.Link.
type segmentLink struct{ st *overlay.Stack }

func (l segmentLink) LocalHIT() wire.HIT { return l.st.HIT() }

func (l segmentLink) WriteSegment(dst wire.HIT, proto uint8, seg []byte) error {
	return l.st.WriteSegment(dst, proto, seg)
}

// MaxSegment is the longest transport segment the path to hit carries
// unfragmented: a BEET segment takes the place of an inner UDP header and
// its datagram, so it is MaxDatagram's figure and the 8 octets of that
// header.
func (l segmentLink) MaxSegment(hit wire.HIT) (int, bool) {
	n, ok := l.st.MaxDatagram(hit)
	return n + 8, ok
}

// Live lets the transport skip Associate when the association is up.
func (l segmentLink) Live(hit wire.HIT) bool { return l.st.Live(hit) }

// WatchAssociation lets a Dial, and a connection, fail as soon as its
// peer ends the association with CLOSE.
func (l segmentLink) WatchAssociation(hit wire.HIT) (overlay.AssocWatch, <-chan struct{}) {
	return l.st.WatchAssociation(hit)
}

// SetSegmentReopens lets the transport say which of its segments may start
// a base exchange with a peer that closed the association.
func (l segmentLink) SetSegmentReopens(proto uint8, reopens func(seg []byte) bool) {
	l.st.SetSegmentReopens(proto, reopens)
}

// HandleSegmentBatches lets the transport coalesce a receive batch's
// segments (the overlay calls flush at the end of each).
func (l segmentLink) HandleSegmentBatches(proto uint8, fn func(src wire.HIT, seg []byte), flush func()) {
	_ = l.st.HandleSegmentBatches(proto, fn, flush)
}

func (l segmentLink) HandleSegments(proto uint8, fn func(src wire.HIT, seg []byte)) {
	// The transport is the protocol's only user on this node, so
	// registering cannot find it taken.
	_ = l.st.HandleSegments(proto, fn)
}

// HIT returns the node's HIT.
func (n *Node) HIT() HIT { return n.stack.HIT() }

// LocalAddr returns the address of the node's UDP socket.
func (n *Node) LocalAddr() netip.AddrPort { return n.stack.LocalAddr() }

// AddPeer adds locators (UDP addresses) for a peer's HIT.
func (n *Node) AddPeer(peer HIT, addrs ...netip.AddrPort) { n.stack.AddPeer(peer, addrs...) }

// Peers returns one record per association, in HIT order.
func (n *Node) Peers() []PeerInfo { return peersFrom(n.stack.Peers()) }

// WhoIs returns the record of the association with peer, whose HIT the
// base exchange authenticated: its state, locators, suites and counters,
// as Peers has it. It reports false when there is none. A server that got
// a connection from a *Addr asks it who is at the other end, as tsnet's
// WhoIs does.
func (n *Node) WhoIs(peer HIT) (PeerInfo, bool) {
	for _, p := range n.Peers() {
		if p.HIT == peer {
			return p, true
		}
	}
	return PeerInfo{}, false
}

// Dial connects to address (`[HIT]:port`) on the named network; see
// DialContext.
func (n *Node) Dial(network, address string) (net.Conn, error) {
	return n.DialContext(context.Background(), network, address)
}

// DialContext connects to address, `[HIT]:port` (as Addr.String writes
// it) or `name:port` when Config.Resolver knows the name, running the base
// exchange with the peer first if there is no association yet. network
// is "tcp", "tcp6" or "hip" for a stream, "udp" or "udp6" for a
// connected datagram socket. The context bounds the whole dial, name
// lookup and base exchange included.
//
// Errors are *net.OpError whose Net is network, wrapping, for errors.Is:
// ErrBadHIT (not a HIT, and no resolver knows the name), ErrUnknownPeer
// (no locator and no relay for the HIT, or the resolver does not know the
// name), ErrNotAuthorized (Config.Authorize refused the peer, or the peer
// refused us), ErrHandshakeFailed, ErrHandshakeTimeout (a *DialError
// naming the locators tried; Timeout() true, also when ctx's deadline
// ended the base exchange), ErrClosed. A deadline that ends the dial
// after the base exchange (waiting for the stream transport's own
// handshake) or a canceled ctx gives ctx's error, whose Timeout() is
// true for a deadline, as a net.Dialer's.
//
// A stream's Dial does not wait for the peer to accept it: the first
// octets go out at once, and a port with no listener shows on the
// connection's first Read or Write, an error wrapping ErrRefused (with
// the QUIC transport; netstack's TCP waits for the SYN-ACK and returns
// ErrRefused from Dial).
func (n *Node) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := n.dial(ctx, network, address)
	if err != nil {
		if oe, ok := err.(*net.OpError); ok {
			// The stream layer's, already naming the address: with the
			// network the caller passed, as package net does. Only its
			// own: one deeper in the chain (the resolver's DNS socket)
			// is not the dial's.
			e := *oe
			e.Net = network
			return nil, &e
		}
		return nil, &net.OpError{Op: "dial", Net: network, Addr: addrOrNil(address), Err: err}
	}
	return c, nil
}

func (n *Node) dial(ctx context.Context, network, address string) (net.Conn, error) {
	stream, err := streamNetwork(network, true)
	if err != nil {
		return nil, err
	}
	ra, err := n.resolveAddr(ctx, address) // names.go
	if err != nil {
		return nil, err
	}
	if ra.Port == 0 {
		return nil, errors.New("hipnet: missing port in address")
	}
	if stream {
		// Every stream transport runs the base exchange itself, where it
		// serves it best: QUIC first (its first packet needs the
		// association's secret), netstack beside its SYN.
		return n.streams.Dial(ctx, ra.HIT, ra.Port)
	}
	if err := n.stack.Connect(ctx, ra.HIT); err != nil {
		return nil, err
	}
	pc, err := n.stack.ListenInner(0)
	if err != nil {
		return nil, err
	}
	return &datagramConn{InnerConn: pc, remote: ra}, nil
}

// Listen accepts streams on address: ":port", or `[HIT]:port` with the
// node's own HIT.
// network is "tcp", "tcp6" or "hip". Errors are *net.OpError wrapping
// ErrPortInUse (the port is taken), ErrBadHIT (another host's HIT) or
// ErrClosed, or net.UnknownNetworkError.
//
// The listener, with either stream transport, also has the SetDeadline of
// *net.TCPListener, for an accept loop that wakes now and then:
//
//	if d, ok := ln.(interface{ SetDeadline(time.Time) error }); ok {
//		d.SetDeadline(time.Now().Add(time.Second))
//	}
func (n *Node) Listen(network, address string) (net.Listener, error) {
	ln, err := n.listen(network, address)
	if err != nil {
		if oe, ok := err.(*net.OpError); ok {
			e := *oe // the stream layer's, naming the address: the caller's network
			e.Net = network
			return nil, &e
		}
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return ln, nil
}

func (n *Node) listen(network, address string) (net.Listener, error) {
	stream, err := streamNetwork(network, false)
	if err != nil {
		return nil, err
	}
	if !stream {
		return nil, net.UnknownNetworkError(network)
	}
	port, err := n.localPort(address)
	if err != nil {
		return nil, err
	}
	return n.streams.Listen(port)
}

// ListenPacket opens a datagram endpoint on address: ":port", or
// `[HIT]:port` with the node's own HIT; port 0 picks one. network is "udp", "udp6" or "hip".
// ReadFrom returns the sender as a *Addr. Errors are *net.OpError
// wrapping ErrPortInUse (taken, or the streams' port), ErrBadHIT or
// ErrClosed, or net.UnknownNetworkError; WriteTo may return ErrQueueFull
// while a base exchange runs, ErrUnknownPeer and ErrNotAuthorized.
//
// A datagram of up to 65,441 octets is sent, fragmented by the outer IP
// layer if the path needs it. The largest that crosses the current path
// to a peer in one packet is what the PacketConn's MaxDatagram method
// reports (from the route's MTU; false when it is not known):
//
//	if pm, ok := pc.(interface{ MaxDatagram(hipnet.HIT) (int, bool) }); ok {
//		n, known := pm.MaxDatagram(peer)
//		...
//	}
//
// ReadFrom and WriteTo pass the address as a net.Addr, so each ReadFrom
// allocates one, as net.UDPConn's does. For a hot loop the PacketConn
// also has the pair that passes it as a value, the counterpart of
// net.UDPConn's ReadFromUDPAddrPort and WriteToUDPAddrPort: with an
// association, a datagram sent and received through them allocates
// nothing, end to end.
//
//	type addrConn interface {
//		ReadFromAddr(b []byte) (int, hipnet.Addr, error)
//		WriteToAddr(b []byte, to hipnet.Addr) (int, error)
//	}
//	if ac, ok := pc.(addrConn); ok {
//		n, from, err := ac.ReadFromAddr(buf)
//		...
//	}
func (n *Node) ListenPacket(network, address string) (net.PacketConn, error) {
	switch network {
	case "udp", "udp6", "hip":
	default:
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	port, err := n.localPort(address)
	if err == nil && port == StreamPort {
		err = fmt.Errorf("%w: %d is reserved for streams", overlay.ErrPortInUse, port)
	}
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	pc, err := n.stack.ListenInner(port)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return pc, nil
}

// Close closes every listener and resets every stream still open (its
// peer's Read fails with ECONNRESET and ErrPeerLeft), gives the streams
// the application closed before up to a second to deliver what was
// written to them (as a kernel's TCP does after a process exits), sends
// CLOSE to every peer, and closes the socket. It returns when the node's
// goroutines have stopped.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		err1 := n.streams.Close()
		err2 := n.stack.Close()
		if n.addrs != nil {
			n.addrs.Close()
		}
		n.closeErr = errors.Join(err1, err2)
	})
	return n.closeErr
}

// localPort parses ":port" or `[own HIT]:port`.
func (n *Node) localPort(address string) (int, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return 0, err
	}
	if host != "" && host != "::" && host != "0.0.0.0" {
		h, err := ParseHIT(host)
		if err != nil {
			return 0, err
		}
		if h != n.HIT() {
			return 0, &hitError{fmt.Errorf("%w: %v is not this node's HIT", ErrBadHIT, h)}
		}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("hipnet: bad port %q", port)
	}
	return int(p), nil
}

// streamNetwork maps a network name to streams (true) or datagrams.
func streamNetwork(network string, dial bool) (bool, error) {
	switch network {
	case "tcp", "tcp6", "hip":
		return true, nil
	case "udp", "udp6":
		if dial {
			return false, nil
		}
	}
	return false, net.UnknownNetworkError(network)
}

func addrOrNil(s string) net.Addr {
	if a, err := overlay.ParseAddr(s); err == nil {
		return a
	}
	return nil
}

// datagramConn is a datagram socket connected to one peer address: the
// net.Conn that DialContext returns for "udp".
type datagramConn struct {
	*overlay.InnerConn
	remote *Addr
}

func (c *datagramConn) RemoteAddr() net.Addr { return c.remote }

func (c *datagramConn) Write(b []byte) (int, error) { return c.InnerConn.WriteTo(b, c.remote) }

// Read returns the next datagram from the connected peer; datagrams from
// other addresses are discarded, as a connected UDP socket does.
func (c *datagramConn) Read(b []byte) (int, error) {
	for {
		n, from, err := c.InnerConn.ReadFrom(b)
		if err != nil {
			return n, err
		}
		if a, ok := from.(*Addr); ok && a.HIT == c.remote.HIT && a.Port == c.remote.Port {
			return n, nil
		}
	}
}
