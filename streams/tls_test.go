package streams

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

func TestCertificate(t *testing.T) {
	ka, _, _ := testIdentities(t)
	hit := wire.HIT(ka.HIT())
	cert, err := newCertificate(ka)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if leaf.Subject.String() != "CN="+hit.String() || leaf.Issuer.String() != leaf.Subject.String() {
		t.Errorf("subject %q issuer %q, want CN=%s for both", leaf.Subject, leaf.Issuer, hit)
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(hit.Addr().AsSlice()) {
		t.Errorf("IP SANs %v, want [%s]", leaf.IPAddresses, hit)
	}
	if !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(ka.Public().CryptoPublicKey()) {
		t.Error("certificate key is not the host identity key")
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if leaf.IsCA || !leaf.BasicConstraintsValid {
		t.Error("the host certificate must be an end-entity certificate")
	}
	if err := checkPeerCertificate([]*x509.Certificate{leaf}, hit, lookupOf(ka)); err != nil {
		t.Errorf("checkPeerCertificate on our own certificate: %v", err)
	}
}

// lookupOf answers PeerIdentity with the public parts of keys.
func lookupOf(keys ...*hostid.PrivateKey) func(wire.HIT) (*hostid.PublicKey, bool) {
	return func(h wire.HIT) (*hostid.PublicKey, bool) {
		for _, k := range keys {
			if wire.HIT(k.HIT()) == h {
				return k.Public(), true
			}
		}
		return nil, false
	}
}

// forge makes a certificate naming hit, holding pub, signed by signer.
func forge(t *testing.T, hit wire.HIT, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	serial, _ := serialNumber()
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
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The synthetic root makes the standard verifier accept exactly leaves
// signed by the peer's host identity key under the peer's name, and
// checkPeerCertificate closes the one gap left (a leaf with another key,
// signed by the right one).
func TestSyntheticRoot(t *testing.T) {
	kb, _, other := testIdentities(t)
	peer := wire.HIT(kb.HIT())
	root, err := syntheticRoot(peer, kb.Public().CryptoPublicKey())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	verify := func(leaf *x509.Certificate) error {
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:     peer.String(),
			Roots:       pool,
			CurrentTime: time.Now(),
		})
		return err
	}
	peerCert, err := newCertificate(kb)
	if err != nil {
		t.Fatal(err)
	}
	otherCert, err := newCertificate(other)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		leaf       *x509.Certificate
		verifies   bool // the standard verifier
		checkPeers bool // checkPeerCertificate
	}{
		{"the peer's certificate", peerCert.Leaf, true, true},
		{"another host's certificate", otherCert.Leaf, false, false},
		{"the peer's name, another key, self-signed", forge(t, peer, other.Public().CryptoPublicKey(), other.Signer()), false, false},
		// checkPeerCertificate no longer re-checks the leaf's own
		// signature: the chain verification rejects this one on the
		// client, and on both sides TLS's CertificateVerify requires the
		// private key of the peer's host identity, which the forger lacks.
		{"the peer's name and key, signed by another key", forge(t, peer, kb.Public().CryptoPublicKey(), other.Signer()), false, true},
		{"another key, signed by the peer's", forge(t, peer, other.Public().CryptoPublicKey(), kb.Signer()), true, false},
		{"another name, signed by the peer's key", forge(t, wire.HIT(other.HIT()), kb.Public().CryptoPublicKey(), kb.Signer()), false, false},
	} {
		if err := verify(tc.leaf); (err == nil) != tc.verifies {
			t.Errorf("%s: x509 Verify: %v, want success %v", tc.name, err, tc.verifies)
		}
		err := checkPeerCertificate([]*x509.Certificate{tc.leaf}, peer, lookupOf(kb, other))
		if (err == nil) != tc.checkPeers {
			t.Errorf("%s: checkPeerCertificate: %v, want success %v", tc.name, err, tc.checkPeers)
		}
	}
}

func TestCheckPeerCertificate(t *testing.T) {
	ka, kb, other := testIdentities(t)
	peer := wire.HIT(ka.HIT())
	cert, err := newCertificate(ka)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if err := checkPeerCertificate([]*x509.Certificate{leaf, leaf}, peer, lookupOf(ka)); !errors.Is(err, ErrPeerCertificate) {
		t.Errorf("two certificates: %v", err)
	}
	if err := checkPeerCertificate(nil, peer, lookupOf(ka)); !errors.Is(err, ErrPeerCertificate) {
		t.Errorf("no certificate: %v", err)
	}
	if err := checkPeerCertificate([]*x509.Certificate{leaf}, peer, lookupOf(kb)); !errors.Is(err, overlay.ErrUnknownPeer) {
		t.Errorf("no association: %v", err)
	}
	// A table that maps the HIT to a key of another HIT is refused.
	wrong := func(wire.HIT) (*hostid.PublicKey, bool) { return other.Public(), true }
	if err := checkPeerCertificate([]*x509.Certificate{leaf}, peer, wrong); !errors.Is(err, ErrPeerCertificate) {
		t.Errorf("identity of another HIT: %v", err)
	}
	// The certificate names a HIT other than the association's.
	if err := checkPeerCertificate([]*x509.Certificate{leaf}, wire.HIT(kb.HIT()), lookupOf(ka, kb)); !errors.Is(err, ErrPeerCertificate) {
		t.Errorf("certificate of another HIT: %v", err)
	}
}

// A server takes the share of a client of this release (X25519) and of
// one that switched to the faster group of its architecture
// (clientCurvesFor): the handshake needs no HelloRetryRequest, whose round
// trip would cost more than the faster group saves.
func TestCurvesAgreeWithoutRetry(t *testing.T) {
	ka, _, _ := testIdentities(t)
	cert, err := newCertificate(ka)
	if err != nil {
		t.Fatal(err)
	}
	for _, offer := range [][]tls.CurveID{clientCurves, clientCurvesFor("amd64"), clientCurvesFor("mipsle")} {
		func() {
			cc, sc := net.Pipe()
			srv := tls.Server(sc, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
				CurvePreferences: serverCurves})
			done := make(chan error, 1)
			go func() { done <- srv.Handshake() }()
			cli := tls.Client(cc, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
				CurvePreferences: offer})
			err := cli.Handshake()
			cc.Close() // net.Pipe: unblocks the server, whichever way it went
			if serr := <-done; err != nil || serr != nil {
				t.Fatalf("client offering %v: %v, %v", offer, err, serr)
			}
			if got := cli.ConnectionState().CurveID; got != offer[0] {
				t.Errorf("client offering %v: %v", offer, got)
			}
			sc.Close()
		}()
	}
}
