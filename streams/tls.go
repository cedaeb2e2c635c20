package streams

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// alpn is the one application protocol of the stream layer. A new stream
// header version does not need a new ALPN; a new binding of TLS to HIP
// would.
const alpn = "hipnet/1"

// The validity of our certificates and of the synthetic ones: as wide as
// X.509 allows, since nothing about the binding depends on time (the HIP
// association is the credential, and it is checked on every handshake).
var (
	notBefore = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter  = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC) // RFC 5280 §4.1.2.5
)

// ErrPeerCertificate is wrapped by every rejection of a peer's certificate:
// it is not the peer's host identity key, or not named by its HIT.
var ErrPeerCertificate = errors.New("streams: peer certificate is not bound to the peer's host identity")

// hitName is the Subject and Issuer of a host's certificate: one RDN,
// CN=<HIT in IPv6 text form>.
func hitName(h wire.HIT) pkix.Name { return pkix.Name{CommonName: h.String()} }

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// newCertificate makes the host's certificate: self-issued and self-signed
// by the host identity key, CN and IP SAN the HIT.
func newCertificate(id *hostid.PrivateKey) (tls.Certificate, error) {
	hit := wire.HIT(id.HIT())
	serial, err := serialNumber()
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               hitName(hit),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{hit.Addr().AsSlice()},
	}
	signer := id.Signer()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("streams: certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("streams: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: signer, Leaf: leaf}, nil
}

// peerKey returns the authenticated Host Identity of the association with
// peer, checking that it is the identity of that HIT.
func peerKey(lookup func(wire.HIT) (*hostid.PublicKey, bool), peer wire.HIT) (*hostid.PublicKey, error) {
	pub, ok := lookup(peer)
	if !ok || pub == nil {
		return nil, fmt.Errorf("streams: no association with %s: %w", peer, overlay.ErrUnknownPeer)
	}
	if wire.HIT(pub.HIT()) != peer {
		return nil, fmt.Errorf("streams: the identity known for %s is that of %s: %w",
			peer, wire.HIT(pub.HIT()), ErrPeerCertificate)
	}
	return pub, nil
}

// checkPeerCertificate is the binding rule, the same on both sides: the
// peer sent exactly one certificate, self-issued and self-signed, named
// CN=<peer> with IP SAN <peer>, whose public key is the host identity key
// that HIP authenticated for peer. Since HITFromHI(HI) == peer holds for
// that identity (peerKey checks it), the certificate hashes to the
// association's peer HIT.
func checkPeerCertificate(certs []*x509.Certificate, peer wire.HIT, lookup func(wire.HIT) (*hostid.PublicKey, bool)) error {
	if len(certs) != 1 {
		return fmt.Errorf("%w: %d certificates, want 1", ErrPeerCertificate, len(certs))
	}
	leaf := certs[0]
	if string(leaf.RawIssuer) != string(leaf.RawSubject) {
		return fmt.Errorf("%w: not self-issued", ErrPeerCertificate)
	}
	// The leaf's own signature is not checked again here: the client's
	// chain verification already checked it against the synthetic root
	// (the peer's key), and on both sides TLS's CertificateVerify proves
	// possession of the leaf key, which must be the host identity key.
	if leaf.Subject.CommonName != peer.String() || len(leaf.IPAddresses) != 1 ||
		!leaf.IPAddresses[0].Equal(peer.Addr().AsSlice()) {
		return fmt.Errorf("%w: names %q, want %s", ErrPeerCertificate, leaf.Subject.CommonName, peer)
	}
	pub, err := peerKey(lookup, peer)
	if err != nil {
		return err
	}
	k, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !k.Equal(pub.CryptoPublicKey()) {
		return fmt.Errorf("%w: key is not the host identity of %s", ErrPeerCertificate, peer)
	}
	return nil
}

// clientTLS is the tls.Config of one QUIC connection dialed to peer, whose
// authenticated identity is pub. With the association's secret it offers
// the PSK session (psk.go) and still carries everything the certificate
// handshake needs, which the server chooses when it has no secret.
func (m *Manager) clientTLS(peer wire.HIT, pub *hostid.PublicKey, secret []byte) (*tls.Config, error) {
	certs, err := m.certs.get(peer, pub)
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: clientCurves,
		Certificates:     []tls.Certificate{m.cert},
		RootCAs:          certs.pool,
		ServerName:       peer.String(), // an IP literal: verified against the IP SAN, no SNI sent
		NextProtos:       []string{alpn},
	}
	var leaf *x509.Certificate // the server certificate of our PSK session
	if secret != nil {
		session, err := clientSession(m.local, peer, secret, certs, time.Now())
		if err != nil {
			return nil, err
		}
		conf.ClientSessionCache = &pskCache{session: session}
		leaf = certs.leaf
	}
	lookup := m.cfg.PeerIdentity
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifyPeer(cs, peer, leaf, lookup)
	}
	return conf, nil
}

// verifyPeer is VerifyConnection on both sides: a resumed connection must
// have resumed our PSK session with peer (leaf is its peer certificate,
// nil when we offered or accepted none), any other must present peer's
// certificate.
func verifyPeer(cs tls.ConnectionState, peer wire.HIT, leaf *x509.Certificate, lookup func(wire.HIT) (*hostid.PublicKey, bool)) error {
	if cs.DidResume {
		return checkResumed(cs, leaf)
	}
	return checkPeerCertificate(cs.PeerCertificates, peer, lookup)
}

// serverTLS is the tls.Config of the QUIC listener. It only chooses, per
// connection, a config bound to the HIT the client's packets came from:
// quic-go fills tls.ClientHelloInfo.Conn with a net.Conn whose RemoteAddr
// is the address ReadFrom returned, the *overlay.Addr whose HIT the ESP
// security association authenticated.
func (m *Manager) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.cert},
		NextProtos:   []string{alpn},
		GetConfigForClient: func(info *tls.ClientHelloInfo) (*tls.Config, error) {
			if info.Conn == nil {
				return nil, errors.New("streams: no remote address for the TLS handshake")
			}
			peer, ok := remoteHIT(info.Conn.RemoteAddr())
			if !ok {
				return nil, fmt.Errorf("streams: remote address %v is not a HIT", info.Conn.RemoteAddr())
			}
			return m.serverTLSFor(peer), nil
		},
	}
}

// serverTLSFor is the config of one connection from peer. Without a secret
// it is the certificate handshake alone, session tickets off. With one it
// also resumes the PSK session of exactly peer (pskServer); tickets must
// then be on, for crypto/tls looks for PSKs only then, and the ticket it
// issues is noTicket.
func (m *Manager) serverTLSFor(peer wire.HIT) *tls.Config {
	lookup := m.cfg.PeerIdentity
	conf := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{m.cert},
		NextProtos:             []string{alpn},
		ClientAuth:             tls.RequireAnyClientCert,
		SessionTicketsDisabled: true,
		CurvePreferences:       serverCurves,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPeer(cs, peer, nil, lookup)
		},
	}
	secret, ok := m.secretFor(peer)
	if !ok {
		return conf
	}
	p := &pskServer{m: m, peer: peer, secret: secret}
	conf.SessionTicketsDisabled = false
	conf.UnwrapSession = p.unwrap
	conf.WrapSession = p.wrap
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifyPeer(cs, peer, p.leaf, lookup)
	}
	return conf
}

// The key exchanges of QUIC's TLS handshake: X25519 and P-256, no hybrid
// post-quantum share. The QUIC session runs inside the ESP association,
// whose keys the HIP base exchange agreed; a hybrid share would add no
// protection the outer layer lacks, while its size splits the ClientHello
// over two packets.
//
// Clients offer X25519 alone (crypto/tls orders groups its own way and
// ignores the order of CurvePreferences, so a client sends its share for
// X25519 whenever it lists it). Servers accept P-256 too. That prepares a
// faster first contact without breaking anyone: where Go has assembly for
// P-256 (amd64, arm64, ppc64le, s390x) its key generation and agreement
// take two thirds of X25519's time, on both sides of the critical path
// (BenchmarkKeyShare: the PSK handshake at 0.91-0.94x), but servers of
// earlier releases accept X25519 alone, and a client that offered only
// P-256 would fail against them. Once those are gone, such clients can
// switch (clientCurvesFor), and every server of this release or later
// takes their share without a HelloRetryRequest (RFC 8446 §4.2.8).
var (
	clientCurves = []tls.CurveID{tls.X25519}
	serverCurves = []tls.CurveID{tls.X25519, tls.CurveP256}
)

// clientCurvesFor is the client's group on goarch once servers that
// accept X25519 alone are gone: the faster one there.
func clientCurvesFor(goarch string) []tls.CurveID {
	switch goarch {
	case "amd64", "arm64", "ppc64le", "s390x":
		return []tls.CurveID{tls.CurveP256}
	}
	return []tls.CurveID{tls.X25519}
}
