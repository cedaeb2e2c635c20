package streams

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"time"

	"github.com/quic-go/quic-go"

	"hipnet.dev/handshake/wire"
)

// The TLS 1.3 pre-shared key of a QUIC connection, from the HIP
// association under it (see doc.go for why it binds the connection to
// the ESP peer).
//
// TLS 1.3 authenticates a handshake either by certificates or by a PSK
// (RFC 8446 §2.2, §4.2.11). A PSK is either external or the resumption
// secret of an earlier connection; crypto/tls implements only the second,
// through public hooks that let the application hold the session:
// ClientSessionCache on the client, UnwrapSession on the server. So the
// association's secret enters TLS as a synthetic session that neither
// side ever received from the other:
//
//   - the client's ClientSessionCache (pskCache) offers one session whose
//     ticket (the PSK identity) is pskIdentity(client, server) and whose
//     secret is pskKey of the association's secret;
//   - the server's UnwrapSession (pskServer.unwrap) recognises only the
//     identity that names the HIT the ESP SA authenticated for the
//     datagram and itself, and answers with a session of the same secret.
//
// crypto/tls then runs psk_dhe_ke (RFC 8446 §4.2.9; Go never offers
// psk_ke): the binder in the ClientHello proves the client holds the PSK
// (§4.2.11.2), the server's Finished proves the server does, and an
// ephemeral exchange (P-256 or X25519, tls.go) gives forward secrecy. No Certificate, no
// CertificateVerify: no signature on either side. QUIC carries it as any
// other TLS 1.3 handshake (RFC 9001 §4, §4.5), with 0-RTT (early.go).
//
// The sessions must look to crypto/tls like those of a certificate
// handshake, or it would not resume them: a client session carries the
// server's certificate and a verified chain to a root in RootCAs (crypto/tls
// checks the leaf's name against ServerName and that the chain's root is
// in RootCAs), and a server session requiring client certificates carries
// a client certificate. Those certificates are synthetic (synthetic.go),
// made by this host, and no handshake sends them. The client's are the
// peer's: its host identity key, its HIT as name. The server's session
// needs only some certificate (crypto/tls checks no chain or name of a
// client's when ClientAuth is RequireAnyClientCert), so it carries one
// placeholder per Manager (Manager.placeholder), made once: making the
// peer's on every first contact cost some 70 µs on the server's critical
// path. VerifyConnection accepts a resumed connection only if its peer
// certificate is exactly the one this host put in the session.
//
// Each session is parsed from its encoding (tls.ParseSessionState).
// crypto/tls keeps the certificates of the sessions it parses in an intern
// table, but only for as long as one of those sessions lives; once the
// garbage collector has freed the last, the next first contact parsed them
// again (x509, and the check of the public key's point) at each end, on
// its critical path: the client's config took 46–108 µs instead of 14
// (BenchmarkClientTLSAfterGC). So each set of synthetic certificates is
// parsed once and pinned (pinSession): the peer's with the rest of its
// synthetic certificates (peerCerts.pin), the placeholder with the
// placeholder. The table is crypto/tls's own; were it gone, only the time
// would come back (TestPSKSessionCertificatesPinned would say so).

// SecretSize is the size of the secret Config.Secret returns.
const SecretSize = 32

// pskLabel starts every PSK identity: it names this binding of TLS to
// HIP, so that a new binding can never accept an old one's identity.
const pskLabel = "hipnet-psk1"

// pskSuite is the cipher suite of the synthetic sessions. A TLS 1.3 PSK is
// tied to a hash, not a suite (RFC 8446 §4.2.11): the server may pick any
// suite with SHA-256. Go's client offers AES-128-GCM, ChaCha20-Poly1305
// (both SHA-256) and AES-256-GCM (SHA-384); Go's server prefers either of
// the first two. Were it to pick the third, crypto/tls would skip the PSK
// and the certificate handshake would follow.
const pskSuite = tls.TLS_AES_128_GCM_SHA256

// pskLifetime is how long the client's synthetic session claims to be
// valid. It only has to outlast the handshake; the secret's life is the
// association's, which Secret decides anew on every handshake.
const pskLifetime = time.Hour

// noTicket is the only session ticket the server hands out
// (pskServer.wrap). crypto/tls resumes PSKs only with session tickets
// enabled, and quic-go then asks for a NewSessionTicket after every
// handshake, whose failure would close the connection. A real ticket would
// outlive the association it was issued over; this one names nothing, the
// client's pskCache drops it, and UnwrapSession would refuse it anyway.
var noTicket = []byte("hipnet: no tickets")

// pskIdentity is the PSK identity of a connection client dials to server:
// the label, then the two HITs, the client's first. Naming both directions
// makes the identity (and with it the key) of A dialing B differ from that
// of B dialing A, so a ClientHello reflected back to its sender never
// verifies (the "Selfie" reflection attack on PSKs shared by two hosts
// that act in both roles; see RFC 9257).
func pskIdentity(client, server wire.HIT) []byte {
	b := make([]byte, 0, len(pskLabel)+2*len(client))
	b = append(b, pskLabel...)
	b = append(b, client[:]...)
	return append(b, server[:]...)
}

// pskKey derives the TLS PSK of the connection named by identity from the
// association's secret: the secret may serve other purposes of the
// overlay, and the key of one direction must not be that of the other.
func pskKey(secret, identity []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, "hipnet streams tls13 psk "+string(identity), sha256.Size)
}

// secretFor returns the association's secret with peer, or false.
func (m *Manager) secretFor(peer wire.HIT) ([]byte, bool) {
	if m.cfg.Secret == nil {
		return nil, false
	}
	s, ok := m.cfg.Secret(peer)
	if !ok {
		return nil, false
	}
	if len(s) != SecretSize {
		m.log.Debug("streams: ignoring a secret of the wrong size", "peer", peer, "size", len(s))
		return nil, false
	}
	return s, true
}

// pskCache is the ClientSessionCache of one QUIC dial that has a secret.
// Get offers the synthetic session to whatever key crypto/tls asks for
// (the config serves one connection to one server). Put keeps nothing:
// the server's NewSessionTicket (noTicket) must never be resumed.
type pskCache struct {
	session *tls.ClientSessionState
}

func (c *pskCache) Get(string) (*tls.ClientSessionState, bool) { return c.session, true }
func (c *pskCache) Put(string, *tls.ClientSessionState)        {}

// clientSession makes the client's synthetic session for dialing peer:
// the PSK, and as server certificate the synthetic leaf of peer's host
// identity with the chain to the synthetic root the client trusts.
func clientSession(local, peer wire.HIT, secret []byte, certs *peerCerts, now time.Time) (*tls.ClientSessionState, error) {
	identity := pskIdentity(local, peer)
	key, err := pskKey(secret, identity)
	if err != nil {
		return nil, err
	}
	enc := encodeSession(sessionClient, key, now, certs.leaf, certs.root, earlyClientExtra)
	state, err := tls.ParseSessionState(enc)
	if err != nil {
		return nil, err
	}
	return tls.NewResumptionState(identity, state)
}

// pskServer is the PSK half of the server's config for one connection,
// from the client HIT the ESP SA authenticated.
type pskServer struct {
	m      *Manager
	peer   wire.HIT
	secret []byte
	leaf   *x509.Certificate // the peer certificate of the session unwrap accepted
}

// unwrap is UnwrapSession: it accepts exactly the identity of peer
// dialing us, and nothing else, not even real tickets. Anything else gives
// (nil, nil), which makes crypto/tls go on to the certificate handshake.
// It cannot see the binder: crypto/tls checks it against the returned
// secret right after, and aborts the handshake if it fails (RFC 8446
// §4.2.11).
//
// The session allows early data (early.go) when the server chose the
// session's cipher suite, with which the client sealed it: crypto/tls
// accepts early data only then, and the check here keeps quic-go from
// counting on it otherwise (the client then sends it again in 1-RTT).
func (p *pskServer) unwrap(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	if !bytes.Equal(identity, pskIdentity(p.peer, p.m.local)) {
		return nil, nil
	}
	if _, err := peerKey(p.m.cfg.PeerIdentity, p.peer); err != nil {
		p.m.log.Debug("streams: no PSK: peer identity", "peer", p.peer, "err", err)
		return nil, nil
	}
	ph, err := p.m.placeholder()
	if err != nil {
		return nil, nil
	}
	leaf := ph.leaf
	key, err := pskKey(p.secret, identity)
	if err != nil {
		return nil, nil
	}
	var early []byte
	if cs.CipherSuite == pskSuite {
		early = earlyServerExtra
	}
	state, err := tls.ParseSessionState(encodeSession(sessionServer, key, time.Now(), leaf, nil, early))
	if err != nil {
		return nil, nil
	}
	p.leaf = leaf
	return state, nil
}

// wrap is WrapSession: the ticket it issues resumes nothing (noTicket).
func (p *pskServer) wrap(tls.ConnectionState, *tls.SessionState) ([]byte, error) {
	return noTicket, nil
}

// checkResumed is VerifyConnection's rule for a connection that resumed a
// session (ConnectionState.DidResume): the session must be the synthetic
// one this host made for this connection, so its one peer certificate is
// leaf. A resumed handshake exchanges no certificates; the peer's
// possession of the PSK (binder or Finished) is the authentication, and
// the PSK exists only for the association with exactly that peer.
func checkResumed(cs tls.ConnectionState, leaf *x509.Certificate) error {
	if leaf == nil || len(cs.PeerCertificates) != 1 || !cs.PeerCertificates[0].Equal(leaf) {
		return errNotOurSession
	}
	return nil
}

var errNotOurSession = errors.New("streams: resumed a TLS session this host did not make")

// pskRejected reports whether a QUIC dial failed because the server could
// not verify our PSK binder: it aborts with decrypt_error (RFC 8446
// §4.2.11, §6.2; alert 51), sent as CRYPTO_ERROR 0x100+51 (RFC 9001
// §4.8). The two hosts then disagree about the association's secret.
func pskRejected(err error) bool {
	const decryptError = 51
	var te *quic.TransportError
	return errors.As(err, &te) && te.Remote && te.ErrorCode == 0x100+decryptError
}

// Session types of crypto/tls's SessionState encoding.
const (
	sessionServer = 1
	sessionClient = 2
)

// encodeSession encodes a TLS 1.3 session in the SessionState format that
// crypto/tls documents in ticket.go (SessionState.Bytes) and parses with
// tls.ParseSessionState, the only public way to make a session with a
// secret of our choosing:
//
//	uint16 version; uint8 type; uint16 cipher_suite; uint64 created_at;
//	opaque secret<1..2^8-1>; Extra extra<0..2^24-1>;
//	uint8 ext_master_secret; uint8 early_data;
//	CertificateEntry certificate_list<0..2^24-1>;
//	CertificateChain verified_chains<0..2^24-1>;  /* excluding leaf */
//	if early_data: opaque alpn<0..2^8-1>;
//	client only: uint64 use_by; uint32 age_add;
//
// early, when not nil, allows early data (early.go): it is the session's
// one Extra entry, quic-go's own (the transport parameters 0-RTT
// assumes), and the session names our ALPN protocol, which crypto/tls
// requires to match for 0-RTT. Without it the session has no extra data
// and no early data. The certificate list holds leaf; a client session
// also has the one verified chain [leaf, root] (crypto/tls checks that a
// stored chain's root is in RootCAs).
func encodeSession(typ uint8, secret []byte, now time.Time, leaf, root *x509.Certificate, early []byte) []byte {
	b := make([]byte, 0, 64+len(secret)+2*len(leaf.Raw)+len(early))
	b = binary.BigEndian.AppendUint16(b, tls.VersionTLS13)
	b = append(b, typ)
	b = binary.BigEndian.AppendUint16(b, pskSuite)
	b = binary.BigEndian.AppendUint64(b, uint64(now.Unix()))
	b = append(b, byte(len(secret)))
	b = append(b, secret...)
	if early != nil {
		b = appendUint24(b, 3+len(early)) // extra: one entry
		b = appendUint24(b, len(early))
		b = append(b, early...)
		b = append(b, 0, 1) // ext_master_secret, early_data
	} else {
		b = appendUint24(b, 0) // extra
		b = append(b, 0, 0)    // ext_master_secret, early_data
	}
	// certificate_list: one CertificateEntry, no extensions.
	b = appendUint24(b, 3+len(leaf.Raw)+2)
	b = appendUint24(b, len(leaf.Raw))
	b = append(b, leaf.Raw...)
	b = append(b, 0, 0)
	if typ == sessionServer {
		b = appendUint24(b, 0) // verified_chains: none
		return appendALPN(b, early != nil)
	}
	// verified_chains: one chain, its leaf elided.
	b = appendUint24(b, 3+3+len(root.Raw))
	b = appendUint24(b, 3+len(root.Raw))
	b = appendUint24(b, len(root.Raw))
	b = append(b, root.Raw...)
	b = appendALPN(b, early != nil)
	b = binary.BigEndian.AppendUint64(b, uint64(now.Add(pskLifetime).Unix())) // use_by
	return binary.BigEndian.AppendUint32(b, 0)                                // age_add
}

// appendALPN appends the ALPN protocol of a session with early data.
func appendALPN(b []byte, early bool) []byte {
	if !early {
		return b
	}
	b = append(b, byte(len(alpn)))
	return append(b, alpn...)
}

// pinSession parses, once, a session of type typ that carries leaf (and
// root, for a client session), and returns it to be kept: while it lives,
// crypto/tls parses sessions with the same certificates without parsing
// the certificates again (see above). It holds no secret.
func pinSession(typ uint8, leaf, root *x509.Certificate) (*tls.SessionState, error) {
	return tls.ParseSessionState(encodeSession(typ, make([]byte, sha256.Size), time.Now(), leaf, root, nil))
}

func appendUint24(b []byte, n int) []byte {
	return append(b, byte(n>>16), byte(n>>8), byte(n))
}
