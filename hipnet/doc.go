// Package hipnet gives applications ordinary net.Conn, net.Listener and
// net.PacketConn to peers named by their Host Identity Tag (HIT): the hash
// of a public key, written as an IPv6 address. Underneath, a Node speaks
// HIPv2 (RFC 7401) over one UDP socket: a four-packet base exchange
// authenticates both hosts by their keys and agrees keys, then ESP
// (RFC 7402) encrypts every datagram. Mutual authentication and
// encryption are the default, never an add-on.
//
// A minimal server and client:
//
//	id, _ := hipnet.LoadOrCreateIdentity("node.key")
//	node, _ := hipnet.NewNode(hipnet.Config{Identity: id, ListenAddr: ":10500"})
//	ln, _ := node.Listen("tcp", ":8883")
//	c, _ := ln.Accept()
//	who := c.RemoteAddr().(*hipnet.Addr).HIT // authenticated
//
//	client, _ := hipnet.NewNode(hipnet.Config{Identity: id2,
//		Peers: map[hipnet.HIT][]netip.AddrPort{serverHIT: {serverAddr}}})
//	c, _ := client.DialContext(ctx, "tcp", "["+serverHIT.String()+"]:8883")
//
// Streams ("tcp", "tcp6" or "hip" in Dial and Listen) are QUIC streams
// inside the ESP association, one QUIC connection per peer, with QUIC's
// TLS bound to the HIP host identities. A stream's net.Conn also has
// CloseWrite() error, a half-close as on *net.TCPConn: the peer reads EOF
// once it has read everything written before it. Datagrams ("udp", "udp6" or "hip"
// in ListenPacket, "udp" in Dial) are inner UDP over ESP. Because
// DialContext has the signature of net.Dialer's, it plugs into
// http.Transport.DialContext and MQTT clients. Package hiphttp gives
// handlers the peer's authenticated HIT (hiphttp.PeerHIT), and package
// hipgrpc gives gRPC a dial option and transport credentials whose
// AuthInfo carries it (hipgrpc.PeerHIT), so per-RPC credentials work.
//
// An address is an *Addr, a HIT and a port, written `[HIT]:port` like an
// IPv6 UDP address: Dial takes that form, and every RemoteAddr and
// ReadFrom returns an *Addr whose HIT the base exchange authenticated.
//
// Errors satisfy errors.Is with the exported sentinels (ErrUnknownPeer,
// ErrHandshakeTimeout, ErrHandshakeFailed, ErrRefused, ErrNotAuthorized,
// ErrClosed); deadlines and context cancellation behave as in package net.
//
// # Mobility and failover
//
// A peer may have several locators (Config.Peers, AddPeer): a dial tries
// them in order, the next 250 ms after the previous (Happy Eyeballs), and
// fails at the context's deadline with a net.Error whose Timeout is true
// and whose message names the locators tried and what answered there. Once connected, the
// node checks the path it sends on and, when it dies, moves the
// association to another verified locator within about a second; the
// application's connections carry on (RFC 8047). A peer whose packets
// arrive from a new address (a NAT rebinding, a move) is followed there
// once the address has answered a signed check (RFC 8046 §5.4); a packet
// replayed from elsewhere never moves the path. A node listening on the
// unspecified address (the default, ":10500") watches its own addresses
// and announces them to its peers when they change (RFC 8046 §5.2).
// PeerInfo.Locators shows each locator's state and which one is in use;
// Stats.Paths counts the switches. An association with no application
// data for Config.IdleTimeout (15 min) closes; the next dial opens a new
// one.
//
// # Goroutines
//
// A node runs its stack's goroutines (package overlay lists them: four
// for a plain node, one more per relay), those of the QUIC streams layer
// while streams are open, and, when it watches its addresses, the address
// monitor's one (internal/netmon). Close stops them all.
//
// # The default node
//
// The package-level Dial, DialContext, Listen and ListenPacket use the
// node that Default returns, started on first use and configured from
// these environment variables:
//
//	HIPNET_IDENTITY  the key file, created if missing (default
//	                 hipnet/node.key in the user's configuration
//	                 directory, e.g. ~/.config/hipnet/node.key)
//	HIPNET_LISTEN    the UDP listen address (default ":10500")
//	HIPNET_PEERS     static locators: "HIT@host:port,HIT@host:port,..."
//	HIPNET_RELAYS    relays: "HIT@host:port" or "host:port", comma-separated
//
// # Operations
//
// Node.Peers describes the associations (PeerInfo), Node.Stats counts
// packets, drops and base exchanges (Stats), and Node.Status gathers both
// with the relays' state (Status). StatusHandler serves that status as
// JSON for the `hip status` command, and as Prometheus metrics. Node.Ping
// times a round trip over an association, as `hip ping` does. Default
// documents the environment variables in full.
package hipnet
