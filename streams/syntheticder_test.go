package streams

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"

	"hipnet.dev/handshake/wire"
)

// The synthetic certificates are what encoding/asn1 makes of RFC 5280's
// structures (asn1DER, the encoder syntheticDER replaced), octet for
// octet: for P-256, P-384 and RSA keys, HITs short and long in text,
// serials of every length, with and without a leading zero octet.
func TestSyntheticDERMatchesASN1(t *testing.T) {
	var keys []crypto.PublicKey
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.Public())
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keys = append(keys, rk.Public())
	hits := []wire.HIT{
		{0x20, 0x01, 0x00, 0x22}, // 2001:22:: (short text)
		{0x20, 0x01, 0x00, 0x2f, 0xff, 0xff, 0xab, 0xcd, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0},
	}
	serials := []*big.Int{big.NewInt(1), big.NewInt(127), big.NewInt(128), new(big.Int).Lsh(big.NewInt(1), 126)}
	for range 8 {
		s, err := serialNumber()
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, s)
	}
	for _, key := range keys {
		for _, hit := range hits {
			for _, serial := range serials {
				leaf, err := leafExtensions(hit)
				if err != nil {
					t.Fatal(err)
				}
				for _, exts := range [][]pkix.Extension{rootExtensions(), leaf} {
					got, err := syntheticDER(hit, key, serial, exts)
					if err != nil {
						t.Fatal(err)
					}
					want := asn1DER(t, hit, key, serial, exts)
					if !bytes.Equal(got, want) {
						t.Fatalf("HIT %s, serial %v: cryptobyte\n%x\nencoding/asn1\n%x", hit, serial, got, want)
					}
					if _, err := x509.ParseCertificate(got); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
}

// The X.509 structures of RFC 5280 §4.1, for encoding/asn1.
type tbsCertificate struct {
	Version      int `asn1:"explicit,tag:0"`
	SerialNumber *big.Int
	Signature    pkix.AlgorithmIdentifier
	Issuer       asn1.RawValue
	Validity     validity
	Subject      asn1.RawValue
	PublicKey    asn1.RawValue
	Extensions   []pkix.Extension `asn1:"explicit,tag:3"`
}

type validity struct {
	NotBefore asn1.RawValue
	NotAfter  asn1.RawValue
}

type certificate struct {
	TBSCertificate     asn1.RawValue
	SignatureAlgorithm pkix.AlgorithmIdentifier
	SignatureValue     asn1.BitString
}

// asn1DER is the synthetic certificate as encoding/asn1 encodes it.
func asn1DER(t *testing.T, peer wire.HIT, key crypto.PublicKey, serial *big.Int, exts []pkix.Extension) []byte {
	t.Helper()
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	spki := must(x509.MarshalPKIXPublicKey(key))
	name := must(asn1.Marshal(hitName(peer).ToRDNSequence()))
	from := must(asn1.MarshalWithParams(notBefore, "utc"))
	until := must(asn1.MarshalWithParams(notAfter, "generalized"))
	alg := pkix.AlgorithmIdentifier{Algorithm: oidSignatureECDSAWithSHA256}
	tbs := must(asn1.Marshal(tbsCertificate{
		Version:      2, // v3
		SerialNumber: serial,
		Signature:    alg,
		Issuer:       asn1.RawValue{FullBytes: name},
		Validity:     validity{asn1.RawValue{FullBytes: from}, asn1.RawValue{FullBytes: until}},
		Subject:      asn1.RawValue{FullBytes: name},
		PublicKey:    asn1.RawValue{FullBytes: spki},
		Extensions:   exts,
	}))
	return must(asn1.Marshal(certificate{
		TBSCertificate:     asn1.RawValue{FullBytes: tbs},
		SignatureAlgorithm: alg,
	}))
}
