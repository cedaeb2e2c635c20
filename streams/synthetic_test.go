package streams

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"testing"

	"hipnet.dev/handshake/wire"
)

// The synthetic certificates parse, say what they stand for, and carry no
// signature.
func TestSyntheticCerts(t *testing.T) {
	ka, _, _ := testIdentities(t)
	peer := wire.HIT(ka.HIT())
	var cache certCache
	pc, err := cache.get(peer, ka.Public())
	if err != nil {
		t.Fatal(err)
	}
	key := ka.Public().CryptoPublicKey()
	for _, c := range []struct {
		name      string
		x         *x509.Certificate
		isCA, san bool
	}{{"root", pc.root, true, false}, {"leaf", pc.leaf, false, true}} {
		x := c.x
		if x.Subject.CommonName != peer.String() || !bytes.Equal(x.RawIssuer, pc.root.RawSubject) {
			t.Errorf("%s: subject %s, issuer %s", c.name, x.Subject, x.Issuer)
		}
		if !x.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key) {
			t.Errorf("%s: not the host identity key", c.name)
		}
		if x.IsCA != c.isCA || !x.BasicConstraintsValid {
			t.Errorf("%s: IsCA %v", c.name, x.IsCA)
		}
		if (x.VerifyHostname(peer.String()) == nil) != c.san {
			t.Errorf("%s: IP SANs %v", c.name, x.IPAddresses)
		}
		if len(x.Signature) != 0 {
			t.Errorf("%s: signed", c.name)
		}
	}
	if !pc.root.NotAfter.Equal(notAfter) || !pc.leaf.NotBefore.Equal(notBefore) {
		t.Errorf("validity %v to %v", pc.leaf.NotBefore, pc.root.NotAfter)
	}
	// The cache hands out the same certificates for the same key, new
	// ones for another.
	if again, _ := cache.get(peer, ka.Public()); again != pc {
		t.Error("cache miss for the same identity")
	}
	_, kb, _ := testIdentities(t)
	if other, _ := cache.get(peer, kb.Public()); other == pc {
		t.Error("cache hit for another key")
	}
}
