// Package streams gives hipnet its stream sockets: net.Conn and
// net.Listener between HITs, as QUIC (quic-go) over the HIP association.
//
// # What the room holds
//
//   - Manager (manager.go): one quic.Transport on the inner UDP endpoint
//     the overlay reserves for streams (a net.PacketConn whose addresses
//     are *overlay.Addr), serving as client and server at once. It keeps at
//     most one connection in use per peer HIT, whoever dialed it: an
//     accepted connection carries our Dials to that peer too, concurrent
//     Dials share one handshake, a dead connection is replaced on the next
//     Dial, of the two connections of a simultaneous open both sides
//     retire the same one, and a connection left without streams closes
//     after DefaultIdleTimeout (its keep-alives would otherwise hold the
//     HIP association open for ever). A connection never outlives its
//     association: when the PacketConn reports on associations (the
//     overlay's does: WatchAssociation), the connections with a peer are
//     closed, and their state freed, the moment the association ends
//     (CLOSE, failure, expiry), and their late packets cannot start a new
//     base exchange (SetAutoConnect(false)); a Dial associates first.
//   - The stream header (stream.go): every Dial opens a new bidirectional
//     stream on the peer's connection and writes
//     version (1 octet, 1) | destination port (2) | source port (2);
//     the server answers one octet, 0 accepted or 1 refused. Dial waits
//     for the answer, so a port with no listener fails at once with
//     overlay.ErrRefused, and costs one round trip once the connection
//     exists. Listen(port) receives the accepted streams of its port.
//   - The net.Conn (stream.go) over a quic.Stream: deadlines as in package
//     net, CloseWrite/CloseRead half-closes as on *net.TCPConn, addresses
//     *overlay.Addr.
//   - The binding of QUIC's TLS 1.3 to the HIP identities (tls.go).
//   - The packet size (config.go: PacketSize and the arithmetic behind it).
//
// # What it must not do
//
// It does not authenticate peers itself and keeps no identities of its
// own: it trusts the HIT in the *overlay.Addr the PacketConn reports
// (the ESP security association authenticated it) and the Host Identity
// Config.PeerIdentity returns for that HIT (the base exchange
// authenticated it), and binds TLS to those two. It opens no sockets of
// its own and sends nothing outside the PacketConn. It never sets
// InsecureSkipVerify.
//
// # Why the TLS binding holds
//
// Each host's certificate carries its host identity key, is self-issued
// and self-signed with it, and names the HIT (CN and IP SAN). So a
// certificate proves nothing beyond "the holder of this key", which is
// exactly what the HIT already names: HIT = ORCHID(HI) (RFC 7401 §3.2,
// RFC 7343). The TLS handshake's CertificateVerify proves possession of
// the key.
//
// The client, dialing HIT h, trusts one root: a synthetic certificate
// with Subject CN=<h> and the public key PeerIdentity(h) returns, made on
// the spot and signed by a throwaway key (crypto/x509 does not check the
// signatures of the roots it is given). The standard verifier therefore
// accepts only a leaf that is issued by CN=<h>, signed by h's host
// identity key, and valid for the name h (ServerName is h's IPv6 text, so
// the IP SAN must be h). VerifyConnection then requires that the leaf's
// own key is that host identity key, and PeerIdentity(h) must be the
// identity of h (its HIT is h). No CA can vouch for anyone, there is no
// name other than the HIT, and a certificate of another key never
// verifies.
//
// The server cannot know whom to expect from TLS alone, so it asks QUIC:
// quic-go puts the connection's remote address in
// tls.ClientHelloInfo.Conn, and that address is the *overlay.Addr of the
// datagram, whose HIT the ESP SA authenticated. GetConfigForClient binds a
// config to that HIT r: RequireAnyClientCert, and VerifyConnection
// requires a single self-issued, self-signed certificate naming r whose
// key is PeerIdentity(r). A host can therefore only present its own
// identity, and only over its own association: the TLS peer is the ESP
// peer, on both sides. Session tickets and 0-RTT are off, so every
// connection runs this full check.
//
// # Errors
//
// Dial, Listen and Accept return *net.OpError. errors.Is works with
// overlay.ErrRefused (no listener), overlay.ErrClosed and net.ErrClosed
// (closed Manager, Listener or stream), overlay.ErrPortInUse and
// overlay.ErrUnknownPeer (no association); ErrPeerCertificate marks a
// certificate not bound to the peer's identity. A Read or Write deadline
// gives a net.Error whose Timeout is true.
//
// RFC sections: RFC 9000 (QUIC), RFC 9001 §4 (TLS in QUIC), RFC 8446
// §4.4.2 (certificates), RFC 5280 §4.1.2 (certificate fields), RFC 7401
// §3.2 and RFC 7343 §2 (HIT from HI), RFC 7402 Appendix B (BEET inner
// UDP), RFC 4303 and RFC 3948 (the overhead under PacketSize).
package streams
