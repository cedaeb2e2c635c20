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
//     base exchange (SetAutoConnect(false)); a Dial associates first. A
//     connection that comes up while its association is still finishing
//     (the Initiator between I2 and R2, keyed) waits for it to become live
//     instead (manager.go, watchAssociation).
//   - The stream header (stream.go): every Dial opens a new bidirectional
//     stream on the peer's connection and writes
//     version (1 octet, 1) | destination port (2) | source port (2);
//     the server answers one octet, 0 accepted or 1 refused. Dial does
//     not wait for the answer (optimistic open, answer.go): it returns
//     once the header is sent, so on an existing connection it costs no
//     round trip and the first Write's data follows the header at once.
//     The first Read or Write waits for the answer, and a port with no
//     listener fails there with overlay.ErrRefused. Listen(port) receives
//     the accepted streams of its port.
//   - The net.Conn (conn.go) over a quic.Stream: deadlines as in package
//     net, CloseWrite/CloseRead half-closes as on *net.TCPConn, addresses
//     *overlay.Addr.
//   - The binding of QUIC's TLS 1.3 to the HIP association: a pre-shared
//     key from the association's secret (psk.go), with 0-RTT on first
//     contact (early.go), or, without one, the host identities as
//     certificates (tls.go), and the synthetic certificates that stand for
//     the peer in both (synthetic.go).
//   - The packet size: each connection's from its path (pmtu.go), and
//     PacketSize with the arithmetic behind it (config.go).
//
// # What it must not do
//
// It does not authenticate peers itself and keeps no identities of its
// own: it trusts the HIT in the *overlay.Addr the PacketConn reports
// (the ESP security association authenticated it; quic-go gets it as a
// *net.UDPAddr whose IP is that HIT, packetconn.go), and, for that HIT,
// the association's secret (Config.Secret) and the Host Identity
// Config.PeerIdentity returns (the base exchange authenticated both), and
// binds TLS to those. It opens no sockets of its own and sends nothing
// outside the PacketConn. It never sets InsecureSkipVerify.
//
// # Why the TLS binding holds
//
// The claim: a stream's peer is exactly the ESP peer, the host whose HIT
// the ESP SA authenticated for the connection's datagrams, and can never
// be anyone else. QUIC's TLS 1.3 handshake (RFC 9001 §4) makes it so in
// one of two ways.
//
// With a secret (Config.Secret on both ends), by a pre-shared key (RFC
// 8446 §2.2, §4.2.11; psk.go). The overlay exports the secret from the
// Diffie-Hellman keying material of the HIP association with exactly that
// HIT (RFC 7401 §6.5): only the two hosts of that association know it.
// The PSK is derived from it for one direction, client HIT to server HIT,
// and its identity names both HITs. The server takes the client HIT from
// the datagram's *overlay.Addr and accepts only the identity naming that
// HIT and itself, with the secret of its association with that HIT; any
// other identity (another HIT, the reverse direction, a ticket) gets the
// certificate handshake below. The client's binder (RFC 8446 §4.2.11.2)
// proves it holds the PSK, the server's Finished proves the server does:
// each end has shown the other that it holds the secret of their
// association. Neither can be a third host, which knows no such secret;
// a host that knows another association's secret (A, holding that of A
// with B, claiming to be C) is refused, for the server looks up the
// secret by the HIT the SA named, never by what the identity says. The
// key exchange is psk_dhe_ke (RFC 8446 §4.2.9; crypto/tls offers nothing
// else): an ephemeral exchange (P-256 or X25519, tls.go) is mixed into the
// keys, so a secret that leaks later does not open recorded connections.
// That exchange is the only public-key operation of the handshake: no
// certificate is sent, nothing is signed, and the host identities are not
// checked a second time; the base exchange checked them (its signatures and
// its Diffie-Hellman) and the secret carries that check forward. The
// client's connection reports the server's host identity through a
// synthetic certificate that the client made and put in the session itself
// (psk.go, synthetic.go); the server's session carries a placeholder that
// names no one, for the PSK alone authenticated the client.
// VerifyConnection accepts a resumed session only if its certificate is the
// one this host put there.
//
// The client may start before the base exchange has finished
// (Config.AssociateKeyed, the overlay's Stack.ConnectKeyed): the Initiator
// holds the secret from its I2 on (RFC 7401 §6.5), after it verified the
// R1's signature over the Responder's Diffie-Hellman value, so the PSK it
// derives then is the one the Responder derives on accepting the I2. The
// ClientHello built with it waits in the overlay's queue until the R2
// installs the outbound SA, and is discarded if the exchange fails:
// nothing keyed by the secret leaves before the Responder has
// authenticated us, and the server sees it only over the established SA,
// as any other. The binding argument above is unchanged; only the wait
// for the R2 overlaps the work of building the first flight.
//
// crypto/tls has no external PSKs, so the PSK enters as a session to
// resume: the binder key is derived with the label of resumption PSKs
// where RFC 8446 §7.1 says "ext binder" for external ones. That label
// keeps one kind of PSK from passing for the other; here there is only
// one kind: the client never stores a ticket, and the server hands out
// only a ticket naming nothing and resumes nothing but the association's
// PSK. A ticket issued over one association therefore never resumes
// after it (a new association, a new secret).
//
// The PSK sessions allow 0-RTT (early.go). A Dial that opens a new
// connection (on first contact, during the base exchange, with
// AssociateKeyed) sends its stream's header, and its first Write, as
// early data right behind the ClientHello, and the server
// (a quic.EarlyListener) gives the stream to its listener before the
// client's Finished: the stream's answer and first bytes save the
// handshake's round trip, so first contact costs the base exchange's two
// round trips and the echo's one, as TCP and TLS 1.3 cost three. Early
// data changes none of the binding: crypto/tls reads it only after the
// binder verified, with keys from the same PSK, so it comes from the
// ESP peer as 1-RTT data does. What TLS 1.3 fears of early data, replay
// (RFC 8446 §8), cannot happen below an ESP SA, whose anti-replay window
// drops every copy (RFC 4303 §3.4.3), and the forward secrecy it lacks
// is the SA's own (early.go has the whole argument). A server that
// refuses early data costs its client the round trip, nothing else: the
// stream, and a first Write that waits for the answer, go again in
// 1-RTT.
//
// Without a secret, on either end, by certificates, as before the PSK.
// Each host's certificate carries its host identity key, is self-issued
// and self-signed with it, and names the HIT (CN and IP SAN). So a
// certificate proves nothing beyond "the holder of this key", which is
// exactly what the HIT already names: HIT = ORCHID(HI) (RFC 7401 §3.2,
// RFC 7343). The TLS handshake's CertificateVerify proves possession of
// the key.
//
// The client, dialing HIT h, trusts one root: a synthetic certificate
// with Subject CN=<h> and the public key PeerIdentity(h) returns, made on
// the spot and unsigned (crypto/x509 does not check the signatures of the
// roots it is given; synthetic.go). The standard verifier therefore
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
// tls.ClientHelloInfo.Conn, and that address is the one packetConn made
// from the *overlay.Addr of the datagram (the HIT as a *net.UDPAddr's IP,
// for quic-go's sake), whose HIT the ESP SA authenticated; quic-go has no
// other source of addresses. GetConfigForClient binds a
// config to that HIT r: RequireAnyClientCert, and VerifyConnection
// requires a single self-issued, self-signed certificate naming r whose
// key is PeerIdentity(r). A host can therefore only present its own
// identity, and only over its own association: the TLS peer is the ESP
// peer, on both sides.
//
// Why a PSK that does not verify falls back instead of failing. The two
// ends hold different secrets only when they disagree about the
// association (one of them already replaced it, or a bug). The server
// must abort when the binder does not verify (RFC 8446 §4.2.11), with a
// decrypt_error alert that reveals nothing of either secret; the client
// then dials once more with certificates (Manager.quicDial, or, when the
// abort reaches a 0-RTT stream, its retry: Manager.notePSKRejected). That
// handshake binds the connection to the HIT as firmly as the PSK does,
// so the fallback costs a round trip and two signatures, never the
// binding; and since only the ESP peer's datagrams reach the server under
// its HIT, nobody else can force it. Failing instead would cut two hosts
// off until their association is replaced, for no gain in security.
//
// # Why a connection stays with its peer
//
// The handshake binds a connection to the ESP peer once; QUIC then hands
// each datagram to the connection its destination connection ID names,
// whatever its source (RFC 9000 §5.2), and quic-go's server connections
// follow a source that changes (connection migration, RFC 9000 §9) once
// it answers a path challenge (§8.2). A peer B could thus give its keys
// and connection IDs to a host C that has an association of its own with
// us: C's datagrams would be taken for B's, and our answers sent to C,
// while the stream still named B. That is delegation, not forgery, but
// the claim above is about every datagram, not only the handshake's. So
// the PacketConn checks each datagram before quic-go sees it (cids.go):
// every connection ID that leads to a connection of ours belongs to one
// HIT, and a datagram with an ID of another HIT than the one its ESP SA
// authenticated is dropped. An ID this node issues belongs to the HIT the
// first packet carrying it goes to: it leaves in clear, in a long header
// (RFC 9000 §7.2), and is bound before it leaves, before the peer can use
// it. The ID a client chose for its first Initial belongs to the sender
// of the first Initial or 0-RTT packet with it, whom quic-go makes the
// connection's peer. A
// connection issues no other IDs (NEW_CONNECTION_ID frames are encrypted,
// so their IDs could not be bound; RFC 9000 §5.1.1 allows issuing none).
// No packet of another HIT reaches a connection, so quic-go never
// validates a path to another HIT: a connection neither hears from nor
// sends to any HIT but its peer's. A stateless reset (RFC 9000 §10.3)
// names no connection; from another HIT it can end one only with the
// token the peer issued, that is, with the peer's consent. The IDs are 8
// octets, not quic-go's 4, so that the tokens of the IDs we will issue
// cannot be collected from our resets beforehand (RFC 9000 §21.11). The
// check costs a map lookup under a read lock per datagram, and allocates
// nothing.
//
// # What a peer can make a Manager hold
//
// Any host with an association is a peer, and may be hostile. A peer's
// connections to us are at most four at once, handshaking or up, and its
// connection attempts are refused beyond a burst of eight and two a
// second, before our handshake flight (limits.go). Each connection
// carries at most MaxIncomingStreams of its streams; a stream whose
// header does not come within headerTimeout is reset. A retired
// connection closes once its last stream ends, whoever opened it. Of the
// connection IDs a peer chose for its first Initials, at most
// odcidsPerPeer are bound to it at once, each for a few minutes at most
// (cids.go); its Initials beyond are dropped.
//
// # Goroutines
//
// Besides quic-go's own, per Manager: one accepts connections
// (acceptConns). Per connection: one serves the peer's streams
// (serveConn), one waits for the handshake of a connection accepted
// before it completed (acceptLater), and, on a PacketConn that reports on
// associations, one watches the association (watchAssociation). Per
// stream: one reads a peer's stream header (serveStream); one reads a
// dialed stream's answer (answer.go, readAnswer); one, after the
// application closed a stream, waits at most drainLimit for the peer to
// finish with it (drain.go). Per dial that associates first: one runs
// Config.Associate (whileAssociating). Close waits for all of them
// (Manager.wg).
//
// # Errors
//
// Dial, Listen and Accept return *net.OpError. errors.Is works with
// overlay.ErrClosed and net.ErrClosed (closed Manager, Listener or
// stream), overlay.ErrPortInUse and overlay.ErrUnknownPeer (no
// association); ErrPeerCertificate marks a certificate not bound to the
// peer's identity. Dial does not wait for the server's answer, so it does
// not report a refused port: the stream's first Read or first Write does,
// whichever comes first, with a *net.OpError (Op "read" or "write")
// wrapping overlay.ErrRefused, and so does every later Read and Write. A
// Write waiting for the answer has already sent its data; a refusal
// discards it unread, and that Write returns 0. A certificate that the
// server rejects also shows there, for the client's handshake completes
// before the server has judged it; so does, on a Dial with 0-RTT, a
// server that cannot prove its identity (it lacks the PSK, and its
// certificate does not verify). A Read or Write deadline gives a
// net.Error whose Timeout is true, also while waiting for the answer.
// A stream that ends abruptly fails as a TCP socket of package net does,
// so that code written for one (or for the netstack transport) works
// unchanged (errors.go): errors.Is finds syscall.ECONNRESET on Read
// (EPIPE on Write) when the peer reset the stream, closed the connection
// or its node, or ended the association with CLOSE; ECONNABORTED when
// the association was lost; ETIMEDOUT when the peer stopped answering.
// errors.As still finds quic-go's own error, but errors.Is does not find
// net.ErrClosed in it, as quic-go's errors would have it: that says this
// side closed.
//
// A stream whose connection fails before the answer is retried on
// another connection, as Dial retries, when nothing written can be lost:
// before any Write, or during the first Write (which still holds its
// data) if the peer closed the connection as idle or as a duplicate,
// which proves no listener got the stream. Once data is on the stream
// and no caller holds it any more (a Write returned at its deadline
// before the answer, or CloseWrite), or the connection died in a way that
// may have delivered it, the error is reported instead: the stream layer
// cannot know whether a listener read it. A connection the peer ended on
// purpose is never retried: its Manager closed it (the node is closing),
// or the peer ended the HIP association with CLOSE. The error is reported
// at once, as a reset is on a TCP connection; a retry would only wait for
// a base exchange with a host that is gone to time out.
//
// RFC sections: RFC 9000 (QUIC; §5, §7.2, §9 and §10.3 for connection
// IDs, migration and stateless resets), RFC 8999 §5.1 (the long header),
// RFC 9001 §4 (TLS in QUIC) and §4.6
// (0-RTT), RFC 8446
// §2.2, §4.2.9, §4.2.11 and §7.1 (PSK handshake and key schedule), RFC
// 8446 §4.4.2 (certificates), RFC 5280 §4.1.2 (certificate fields), RFC
// 7401 §3.2 and RFC 7343 §2 (HIT from HI), RFC 7401 §6.5 (the keying
// material under the secret), RFC 7402 Appendix B (BEET inner UDP), RFC
// 4303 and RFC 3948 (the overhead under PacketSize).
package streams
