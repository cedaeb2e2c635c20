package streams

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// The synthetic certificates of a peer. This host makes two for each
// peer host identity it meets, and never sends them:
//
//   - the root (syntheticRoot) the client trusts when it dials the peer
//     with certificates (tls.go): Subject CN=<HIT>, the host identity key,
//     a CA. The standard verifier then accepts exactly a leaf issued by
//     CN=<HIT> and signed by that key.
//   - the leaf (syntheticLeaf) that stands for the peer's certificate in
//     the synthetic TLS sessions of the PSK handshake (psk.go): named as
//     the peer's own certificate is (CN and IP SAN the HIT, so that
//     crypto/tls's check of a client session against ServerName holds),
//     with the host identity key, issued under the root's name. The
//     client's session stores the chain [leaf, root].
//
// Nothing ever checks their signatures: crypto/x509 takes the roots it is
// given as they are, and crypto/tls never verifies a session's
// certificates again (VerifyConnection compares them to the ones made
// here). So they carry none. Making them costs no public-key operation,
// which matters: a signed certificate (a signature, then crypto/x509's
// check of it) costs more than a hundred microseconds, and a host makes
// them on first contact with a peer, the very handshake the PSK speeds
// up.
//
// The root has no subject alternative name: crypto/x509 drops a candidate
// root with the same subject, key and SAN as a certificate already in the
// chain (alreadyInChain), and the peer's real certificate has the HIT as
// its SAN.

// Object identifiers of the synthetic certificate (RFC 5280 §4.2.1, RFC
// 5758 §3.2).
var (
	oidSignatureECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidExtKeyUsage              = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtBasicConstraints      = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtSubjectAltName        = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// Key usage (RFC 5280 §4.2.1.3) and basic constraints (§4.2.1.9) of the
// root (digitalSignature and keyCertSign, a CA) and of the leaf
// (digitalSignature, not a CA).
var (
	rootKeyUsage         = mustMarshal(asn1.BitString{Bytes: []byte{0x84}, BitLength: 6})
	rootBasicConstraints = mustMarshal(struct{ IsCA bool }{true})
	leafKeyUsage         = mustMarshal(asn1.BitString{Bytes: []byte{0x80}, BitLength: 1})
	leafBasicConstraints = mustMarshal(struct {
		IsCA bool `asn1:"optional"`
	}{})
)

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// syntheticRoot makes the synthetic root for peer, whose host identity
// key is key: self-issued, CN=<peer>, a CA, no SAN, no signature.
func syntheticRoot(peer wire.HIT, key crypto.PublicKey) (*x509.Certificate, error) {
	return syntheticCert(peer, key, rootExtensions())
}

func rootExtensions() []pkix.Extension {
	return []pkix.Extension{
		{Id: oidExtKeyUsage, Critical: true, Value: rootKeyUsage},
		{Id: oidExtBasicConstraints, Critical: true, Value: rootBasicConstraints},
	}
}

// syntheticLeaf makes the synthetic leaf for peer: issued by CN=<peer>,
// CN=<peer>, IP SAN peer, not a CA, no signature.
func syntheticLeaf(peer wire.HIT, key crypto.PublicKey) (*x509.Certificate, error) {
	exts, err := leafExtensions(peer)
	if err != nil {
		return nil, err
	}
	return syntheticCert(peer, key, exts)
}

func leafExtensions(peer wire.HIT) ([]pkix.Extension, error) {
	san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 7, Bytes: peer[:]}})
	if err != nil {
		return nil, err
	}
	return []pkix.Extension{
		{Id: oidExtKeyUsage, Critical: true, Value: leafKeyUsage},
		{Id: oidExtBasicConstraints, Critical: true, Value: leafBasicConstraints},
		{Id: oidExtSubjectAltName, Value: san},
	}, nil
}

// syntheticCert makes a certificate issued by and for CN=<peer>, with key
// and exts, valid as long as X.509 allows, without a signature.
func syntheticCert(peer wire.HIT, key crypto.PublicKey, exts []pkix.Extension) (*x509.Certificate, error) {
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	der, err := syntheticDER(peer, key, serial, exts)
	if err != nil {
		return nil, fmt.Errorf("streams: synthetic certificate for %s: %w", peer, err)
	}
	return x509.ParseCertificate(der)
}

// syntheticDER encodes the certificate (RFC 5280 §4.1) with cryptobyte:
// a first contact makes two, and encoding/asn1's reflection took half
// their cost. The parts that never change are encoded once (fixedDER).
// TestSyntheticDERMatchesASN1 holds it to encoding/asn1's output.
func syntheticDER(peer wire.HIT, key crypto.PublicKey, serial *big.Int, exts []pkix.Extension) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, err
	}
	var cn [40]byte // 8 groups of at most 4 hex digits, 7 colons
	name := nameDER(netip.AddrFrom16(peer).AppendTo(cn[:0]))
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(cert *cryptobyte.Builder) {
		cert.AddASN1(cbasn1.SEQUENCE, func(tbs *cryptobyte.Builder) {
			tbs.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(v *cryptobyte.Builder) {
				v.AddASN1Int64(2) // v3
			})
			tbs.AddASN1BigInt(serial)
			tbs.AddBytes(fixedDER.alg)
			tbs.AddBytes(name) // issuer
			tbs.AddBytes(fixedDER.validity)
			tbs.AddBytes(name) // subject
			tbs.AddBytes(spki)
			tbs.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(e *cryptobyte.Builder) {
				e.AddASN1(cbasn1.SEQUENCE, func(list *cryptobyte.Builder) {
					for _, ext := range exts {
						list.AddASN1(cbasn1.SEQUENCE, func(x *cryptobyte.Builder) {
							x.AddASN1ObjectIdentifier(ext.Id)
							if ext.Critical { // DEFAULT FALSE: absent when false (DER)
								x.AddASN1Boolean(true)
							}
							x.AddASN1OctetString(ext.Value)
						})
					}
				})
			})
		})
		cert.AddBytes(fixedDER.alg)
		cert.AddASN1BitString(nil) // no signature
	})
	return b.Bytes()
}

// nameDER encodes the Name CN=<cn> (RFC 5280 §4.1.2.4) as encoding/asn1
// does pkix.Name{CommonName: cn}: a PrintableString, which a HIT's text
// (hex digits and colons) always is.
func nameDER(cn []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(rdns *cryptobyte.Builder) {
		rdns.AddASN1(cbasn1.SET, func(rdn *cryptobyte.Builder) {
			rdn.AddASN1(cbasn1.SEQUENCE, func(atv *cryptobyte.Builder) {
				atv.AddASN1ObjectIdentifier(oidCommonName)
				atv.AddASN1(cbasn1.PrintableString, func(v *cryptobyte.Builder) { v.AddBytes(cn) })
			})
		})
	})
	return b.BytesOrPanic() // nothing here can fail
}

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// fixedDER: the signature algorithm (ecdsa-with-SHA256, no parameters;
// RFC 5758 §3.2) and the validity, UTCTime through 2049, GeneralizedTime
// after (RFC 5280 §4.1.2.5).
var fixedDER = struct{ alg, validity []byte }{
	alg: mustMarshal(pkix.AlgorithmIdentifier{Algorithm: oidSignatureECDSAWithSHA256}),
	validity: mustMarshal(struct {
		NotBefore time.Time `asn1:"utc"`
		NotAfter  time.Time `asn1:"generalized"`
	}{notBefore, notAfter}),
}

// certCache keeps the synthetic certificates of each peer identity, and
// the root pool, for the handshakes in progress with it (a Dial and the
// retries it may make share them). Entries go once a connection with the
// peer is up (drop): parsed certificates are several KiB, and a node that
// meets thousands of peers must not keep theirs. It is bounded too: when
// full it starts over.
type certCache struct {
	mu sync.Mutex
	m  map[wire.HIT]*peerCerts
}

// peerCerts are the synthetic certificates of one peer host identity, and
// the pool that holds the root.
type peerCerts struct {
	key  *hostid.PublicKey
	root *x509.Certificate
	leaf *x509.Certificate
	pool *x509.CertPool
	pin  *tls.SessionState // keeps crypto/tls's parse of root and leaf (psk.go)
}

const maxCachedCerts = 1024

func (c *certCache) get(peer wire.HIT, pub *hostid.PublicKey) (*peerCerts, error) {
	c.mu.Lock()
	if pc, ok := c.m[peer]; ok && pc.key.Equal(pub) {
		c.mu.Unlock()
		return pc, nil
	}
	c.mu.Unlock()
	root, err := syntheticRoot(peer, pub.CryptoPublicKey())
	if err != nil {
		return nil, err
	}
	leaf, err := syntheticLeaf(peer, pub.CryptoPublicKey())
	if err != nil {
		return nil, err
	}
	pin, err := pinSession(sessionClient, leaf, root)
	if err != nil {
		return nil, err
	}
	pc := &peerCerts{key: pub, root: root, leaf: leaf, pool: x509.NewCertPool(), pin: pin}
	pc.pool.AddCert(root)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedCerts {
		c.m = map[wire.HIT]*peerCerts{}
	}
	c.m[peer] = pc
	c.mu.Unlock()
	return pc, nil
}

// drop forgets peer's certificates.
func (c *certCache) drop(peer wire.HIT) {
	c.mu.Lock()
	delete(c.m, peer)
	c.mu.Unlock()
}

// newPlaceholder makes the client certificate of the server's synthetic
// sessions (psk.go): a synthetic leaf that names no host (the zero HIT),
// with this host's key. It stands for no one; the PSK alone authenticates
// the client, and the certificate only makes crypto/tls resume.
func newPlaceholder(id *hostid.PrivateKey) func() (placeholderCert, error) {
	return sync.OnceValues(func() (placeholderCert, error) {
		leaf, err := syntheticLeaf(wire.HIT{}, id.Signer().Public())
		if err != nil {
			return placeholderCert{}, err
		}
		pin, err := pinSession(sessionServer, leaf, nil)
		return placeholderCert{leaf: leaf, pin: pin}, err
	})
}

// placeholderCert is the certificate of the server's sessions, with the
// session that keeps crypto/tls's parse of it (psk.go).
type placeholderCert struct {
	leaf *x509.Certificate
	pin  *tls.SessionState
}
