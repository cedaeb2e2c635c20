package hostid

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	msg := []byte("HIP header | parameters up to HIP_SIGNATURE")
	for _, kt := range testKeyTypes {
		t.Run(kt.String(), func(t *testing.T) {
			k := testKey(t, kt)
			pub := k.Public()
			if pub.Algorithm() != kt.Algorithm() {
				t.Fatalf("Algorithm = %v, want %v", pub.Algorithm(), kt.Algorithm())
			}
			wantSuite := SuiteECDSASHA384
			if kt.Algorithm() == AlgRSA {
				wantSuite = SuiteRSADSASHA256
			}
			if pub.Suite() != wantSuite {
				t.Fatalf("Suite = %v, want %v", pub.Suite(), wantSuite)
			}
			hit := k.HIT()
			if hit != pub.HIT() {
				t.Fatalf("PrivateKey.HIT %x != PublicKey.HIT %x", hit, pub.HIT())
			}
			if want := [4]byte{0x20, 0x01, 0x00, 0x20 | byte(wantSuite)}; [4]byte(hit[:4]) != want {
				t.Fatalf("HIT %x does not start with %x", hit, want)
			}
			if got := HITFromHI(pub.Suite(), pub.HI()); got != hit {
				t.Fatalf("HITFromHI(HI) = %x, HIT = %x", got, hit)
			}

			p2, err := ParseHostIdentity(pub.Algorithm(), pub.HI())
			if err != nil {
				t.Fatalf("ParseHostIdentity(own HI): %v", err)
			}
			if !p2.Equal(pub) || !pub.Equal(p2) {
				t.Fatal("parsed HI is not Equal to the original")
			}
			if p2.HIT() != hit {
				t.Fatalf("parsed HIT %x != %x", p2.HIT(), hit)
			}
			if !pub.CryptoPublicKey().(interface{ Equal(crypto.PublicKey) bool }).Equal(p2.CryptoPublicKey()) {
				t.Fatal("parsed crypto key differs")
			}

			sig, alg, err := k.Sign(nil, msg)
			if err != nil {
				t.Fatal(err)
			}
			if alg != pub.Algorithm() {
				t.Fatalf("Sign alg = %v, want %v", alg, pub.Algorithm())
			}
			if len(sig) != pub.SignatureLen() {
				t.Fatalf("signature of %d octets, SignatureLen %d", len(sig), pub.SignatureLen())
			}
			if err := p2.Verify(msg, sig, alg); err != nil {
				t.Fatalf("Verify own signature: %v", err)
			}

			bad := bytes.Clone(msg)
			bad[3] ^= 1
			if err := p2.Verify(bad, sig, alg); !errors.Is(err, ErrInvalidSignature) {
				t.Fatalf("tampered msg: err = %v, want ErrInvalidSignature", err)
			}
			badSig := bytes.Clone(sig)
			badSig[len(badSig)/2] ^= 0x80
			if err := p2.Verify(msg, badSig, alg); !errors.Is(err, ErrInvalidSignature) {
				t.Fatalf("tampered sig: err = %v, want ErrInvalidSignature", err)
			}
			if err := p2.Verify(msg, sig[:len(sig)-1], alg); !errors.Is(err, ErrInvalidSignature) {
				t.Fatalf("short sig: err = %v, want ErrInvalidSignature", err)
			}
			if err := p2.Verify(msg, append(bytes.Clone(sig), 0), alg); !errors.Is(err, ErrInvalidSignature) {
				t.Fatalf("long sig: err = %v, want ErrInvalidSignature", err)
			}
			other := AlgECDSA
			if alg == AlgECDSA {
				other = AlgRSA
			}
			for _, wrong := range []Algorithm{other, AlgDSA, AlgECDSALow, 0} {
				if err := p2.Verify(msg, sig, wrong); !errors.Is(err, ErrAlgorithmMismatch) {
					t.Fatalf("SIG alg %v: err = %v, want ErrAlgorithmMismatch", wrong, err)
				}
			}

			s := pub.String()
			if !strings.Contains(s, "(HIT 2001:2") {
				t.Fatalf("String() = %q", s)
			}
			if ks := k.String(); strings.Contains(ks, "D:") || !strings.Contains(ks, s) {
				t.Fatalf("PrivateKey.String() = %q", ks)
			}
		})
	}
}

// A signature by one key must not verify under another key of the same
// type.
func TestVerifyWrongKey(t *testing.T) {
	msg := []byte("message")
	for _, kt := range []KeyType{ECDSAP256, RSA2048} {
		k1 := testKey(t, kt)
		k2, err := Generate(kt, nil)
		if err != nil {
			t.Fatal(err)
		}
		sig, alg, err := k1.Sign(nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		if err := k2.Public().Verify(msg, sig, alg); !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("%v: other key's signature: err = %v", kt, err)
		}
		if k1.HIT() == k2.HIT() {
			t.Fatalf("%v: two keys with one HIT", kt)
		}
	}
	// Same algorithm, other curve: wrong length.
	sig, alg, _ := testKey(t, ECDSAP256).Sign(nil, msg)
	if err := testKey(t, ECDSAP384).Public().Verify(msg, sig, alg); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("P-256 signature under P-384 key: err = %v", err)
	}
}

// The HI encodings, checked field by field against RFC 3110 §2 and RFC 7401
// §5.2.9 rather than against our own parser.
func TestHIEncoding(t *testing.T) {
	for _, tc := range []struct {
		kt    KeyType
		curve uint16
		size  int
	}{{ECDSAP256, 1, 32}, {ECDSAP384, 2, 48}} {
		k := testKey(t, tc.kt)
		hi := k.Public().HI()
		ek := k.Signer().(*ecdsa.PrivateKey)
		pt, _ := ek.PublicKey.Bytes()
		if len(hi) != 2+1+2*tc.size || hi[0] != 0 || hi[1] != byte(tc.curve) || hi[2] != 0x04 || !bytes.Equal(hi[2:], pt) {
			t.Fatalf("%v HI = %x", tc.kt, hi)
		}
	}
	for _, tc := range []struct {
		kt   KeyType
		bits int
	}{{RSA2048, 2048}, {RSA3072, 3072}} {
		k := testKey(t, tc.kt)
		hi := k.Public().HI()
		rk := k.Signer().(*rsa.PrivateKey)
		want := append([]byte{3, 0x01, 0x00, 0x01}, rk.N.Bytes()...)
		if !bytes.Equal(hi, want) || len(hi) != 4+tc.bits/8 {
			t.Fatalf("%v HI = %x…, want e_len=3 e=65537 n", tc.kt, hi[:8])
		}
		if k.Public().String() != "RSA-"+itoa(tc.bits)+" (HIT "+hitString(k.HIT())+")" {
			t.Fatalf("String() = %q", k.Public().String())
		}
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// Our signatures decode as the RFC says, checked with crypto primitives
// directly: ECDSA r|s over SHA-256 (P-256) or SHA-384 (P-384); RSA PSS over
// SHA-256 with a 32-octet salt.
func TestSignatureFormatIndependent(t *testing.T) {
	msg := []byte("signed bytes")
	for _, tc := range []struct {
		kt     KeyType
		size   int
		digest []byte
	}{
		{ECDSAP256, 32, sum256(msg)},
		{ECDSAP384, 48, sum384(msg)},
	} {
		k := testKey(t, tc.kt)
		sig, _, err := k.Sign(nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := asn1.Marshal(struct{ R, S *big.Int }{
			new(big.Int).SetBytes(sig[:tc.size]), new(big.Int).SetBytes(sig[tc.size:]),
		})
		if !ecdsa.VerifyASN1(&k.Signer().(*ecdsa.PrivateKey).PublicKey, tc.digest, der) {
			t.Fatalf("%v: r|s does not verify as ECDSA over the RFC 4754 hash", tc.kt)
		}
	}
	k := testKey(t, RSA2048)
	sig, _, err := k.Sign(nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	pub := &k.Signer().(*rsa.PrivateKey).PublicKey
	if err := rsa.VerifyPSS(pub, crypto.SHA256, sum256(msg), sig, &rsa.PSSOptions{SaltLength: 32}); err != nil {
		t.Fatalf("RSA signature is not PSS/SHA-256 with a 32-octet salt: %v", err)
	}
	// A peer may use another salt length (RFC 3447 allows any); we accept it.
	other, err := rsa.SignPSS(rand.Reader, k.Signer().(*rsa.PrivateKey), crypto.SHA256, sum256(msg), &rsa.PSSOptions{SaltLength: 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Public().Verify(msg, other, AlgRSA); err != nil {
		t.Fatalf("PSS with a 20-octet salt rejected: %v", err)
	}
	// PKCS #1 v1.5 is not PSS: RFC 7401 §5.2.9 says PSS MUST be used.
	v15, err := rsa.SignPKCS1v15(rand.Reader, k.Signer().(*rsa.PrivateKey), crypto.SHA256, sum256(msg))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Public().Verify(msg, v15, AlgRSA); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("PKCS #1 v1.5 signature: err = %v", err)
	}
}

func sum256(b []byte) []byte { d := sha256.Sum256(b); return d[:] }
func sum384(b []byte) []byte { d := sha512.Sum384(b); return d[:] }

// A peer may send the ECDSA point as x|y, without the 0x04 octet. The key
// is the same; the HIT is over the bytes received.
func TestECDSAPointWithoutPrefix(t *testing.T) {
	for _, kt := range []KeyType{ECDSAP256, ECDSAP384} {
		k := testKey(t, kt)
		hi := k.Public().HI()
		xy := append(bytes.Clone(hi[:2]), hi[3:]...)
		p, err := ParseHostIdentity(AlgECDSA, xy)
		if err != nil {
			t.Fatalf("%v x|y: %v", kt, err)
		}
		if !bytes.Equal(p.HI(), xy) {
			t.Fatal("HI() is not the bytes received")
		}
		if p.HIT() != HITFromHI(SuiteECDSASHA384, xy) || p.HIT() == k.HIT() {
			t.Fatalf("%v x|y: HIT %x not derived from the received bytes", kt, p.HIT())
		}
		if p.Equal(k.Public()) {
			t.Fatal("x|y and 0x04|x|y HIs are Equal, yet their HITs differ")
		}
		if !p.CryptoPublicKey().(*ecdsa.PublicKey).Equal(k.Public().CryptoPublicKey()) {
			t.Fatal("x|y decodes to another key")
		}
		sig, alg, _ := k.Sign(nil, []byte("m"))
		if err := p.Verify([]byte("m"), sig, alg); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseHostIdentityErrors(t *testing.T) {
	p256 := testKey(t, ECDSAP256).Public().HI()
	offCurve := bytes.Clone(p256)
	offCurve[len(offCurve)-1] ^= 1
	compressed := append([]byte{0, 1, 2}, p256[3:3+32]...)
	zeroPoint := append([]byte{0, 1, 4}, make([]byte, 64)...)
	rsaHI := testKey(t, RSA2048).Public().HI()
	n := rsaHI[4:]
	mod := func(e []byte, n []byte) []byte { return append(append([]byte{byte(len(e))}, e...), n...) }
	evenN := bytes.Clone(n)
	evenN[len(evenN)-1] &^= 1
	longForm := append([]byte{0, 0, 3, 1, 0, 1}, n...)
	bigExp := append(append([]byte{0, 1, 0}, bytes.Repeat([]byte{1}, 256)...), n...)

	for _, tc := range []struct {
		name string
		alg  Algorithm
		hi   []byte
		want error
	}{
		{"reserved alg 0", 0, p256, ErrUnsupportedAlgorithm},
		{"DSA", AlgDSA, make([]byte, 1+20+3*64), ErrUnsupportedAlgorithm},
		{"ECDSA_LOW", AlgECDSALow, append([]byte{0, 1, 4}, make([]byte, 40)...), ErrUnsupportedAlgorithm},
		{"EdDSA", AlgEdDSA, make([]byte, 36), ErrUnsupportedAlgorithm},
		{"unknown alg", 200, p256, ErrUnsupportedAlgorithm},
		{"ECDSA empty", AlgECDSA, nil, ErrMalformedHostIdentity},
		{"ECDSA one octet", AlgECDSA, []byte{0}, ErrMalformedHostIdentity},
		{"ECDSA curve 0", AlgECDSA, append([]byte{0, 0}, p256[2:]...), ErrUnsupportedCurve},
		{"ECDSA curve 3 (P-521 elsewhere)", AlgECDSA, append([]byte{0, 3}, p256[2:]...), ErrUnsupportedCurve},
		{"ECDSA P-256 point under P-384 label", AlgECDSA, append([]byte{0, 2}, p256[2:]...), ErrMalformedHostIdentity},
		{"ECDSA truncated", AlgECDSA, p256[:len(p256)-2], ErrMalformedHostIdentity},
		// One octet short, 0x04|x|y has the x|y length: read as x|y, off curve.
		{"ECDSA truncated to x|y length", AlgECDSA, p256[:len(p256)-1], ErrInvalidKey},
		{"ECDSA trailing octet", AlgECDSA, append(bytes.Clone(p256), 0), ErrMalformedHostIdentity},
		{"ECDSA wrong prefix octet", AlgECDSA, append([]byte{0, 1, 6}, p256[3:]...), ErrMalformedHostIdentity},
		{"ECDSA compressed", AlgECDSA, compressed, ErrMalformedHostIdentity},
		{"ECDSA x only", AlgECDSA, append([]byte{0, 1}, p256[3:3+32]...), ErrMalformedHostIdentity},
		{"ECDSA off curve", AlgECDSA, offCurve, ErrInvalidKey},
		{"ECDSA zero point", AlgECDSA, zeroPoint, ErrInvalidKey},
		{"RSA empty", AlgRSA, nil, ErrMalformedHostIdentity},
		{"RSA no modulus", AlgRSA, []byte{3, 1, 0, 1}, ErrMalformedHostIdentity},
		{"RSA exponent past end", AlgRSA, []byte{9, 1, 0, 1}, ErrMalformedHostIdentity},
		{"RSA long form truncated", AlgRSA, []byte{0, 1}, ErrMalformedHostIdentity},
		{"RSA long form for short exponent", AlgRSA, longForm, ErrMalformedHostIdentity},
		{"RSA leading zero exponent", AlgRSA, mod([]byte{0, 1, 0, 1}, n), ErrMalformedHostIdentity},
		{"RSA leading zero modulus", AlgRSA, mod([]byte{1, 0, 1}, append([]byte{0}, n...)), ErrMalformedHostIdentity},
		{"RSA exponent 1", AlgRSA, mod([]byte{1}, n), ErrInvalidKey},
		{"RSA even exponent", AlgRSA, mod([]byte{1, 0, 0}, n), ErrInvalidKey},
		{"RSA 257-octet exponent", AlgRSA, bigExp, ErrInvalidKey},
		{"RSA even modulus", AlgRSA, mod([]byte{1, 0, 1}, evenN), ErrInvalidKey},
		{"RSA 512-bit modulus", AlgRSA, mod([]byte{1, 0, 1}, n[:64]), ErrKeySize},
		{"RSA 1016-bit modulus", AlgRSA, mod([]byte{1, 0, 1}, n[:127]), ErrKeySize},
		{"RSA 8200-bit modulus", AlgRSA, mod([]byte{1, 0, 1}, append(bytes.Repeat([]byte{0xff}, 1025), 1)), ErrKeySize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseHostIdentity(tc.alg, tc.hi)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if p != nil {
				t.Fatal("non-nil key with an error")
			}
		})
	}

	// The lower boundary for peers: a 1024-bit (odd) modulus parses.
	n1024 := bytes.Clone(n[:128])
	n1024[127] |= 1
	if _, err := ParseHostIdentity(AlgRSA, mod([]byte{1, 0, 1}, n1024)); err != nil {
		t.Fatalf("1024-bit peer modulus: %v", err)
	}
}

// ParseHostIdentity must not keep the caller's buffer.
func TestParseCopiesInput(t *testing.T) {
	hi := testKey(t, ECDSAP256).Public().HI()
	p, err := ParseHostIdentity(AlgECDSA, hi)
	if err != nil {
		t.Fatal(err)
	}
	hit := p.HIT()
	hi[10] ^= 0xff
	if p.HIT() != hit || bytes.Equal(p.HI(), hi) {
		t.Fatal("PublicKey aliases the input buffer")
	}
	out := p.HI()
	out[10] ^= 0xff
	if !bytes.Equal(p.HI(), testKey(t, ECDSAP256).Public().HI()) {
		t.Fatal("HI() returns the internal buffer")
	}
}

func TestNewPrivateKeyRejects(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPrivateKey(small); !errors.Is(err, ErrKeySize) {
		t.Fatalf("own 1024-bit RSA key: err = %v, want ErrKeySize", err)
	}
	if _, err := NewPrivateKey("not a key"); !errors.Is(err, ErrUnsupportedKeyType) {
		t.Fatalf("string key: err = %v", err)
	}
	if _, err := Generate(KeyType(42), nil); !errors.Is(err, ErrUnsupportedKeyType) {
		t.Fatalf("Generate(42): err = %v", err)
	}
}

func TestSuite(t *testing.T) {
	for _, tc := range []struct {
		s      Suite
		hash   crypto.Hash
		n      int
		listID uint8
	}{
		{SuiteRSADSASHA256, crypto.SHA256, 32, 0x10},
		{SuiteECDSASHA384, crypto.SHA384, 48, 0x20},
		{SuiteECDSALowSHA1, crypto.SHA1, 20, 0x30},
	} {
		if tc.s.Hash() != tc.hash || tc.s.HashLen() != tc.n || tc.s.ListID() != tc.listID || !tc.s.Valid() {
			t.Fatalf("suite %d: Hash %v HashLen %d ListID %#x", tc.s, tc.s.Hash(), tc.s.HashLen(), tc.s.ListID())
		}
		if h := tc.s.NewHash(); h == nil || h.Size() != tc.n {
			t.Fatalf("suite %d: NewHash size wrong", tc.s)
		}
		if s, ok := SuiteFromListID(tc.listID); !ok || s != tc.s {
			t.Fatalf("SuiteFromListID(%#x) = %v, %v", tc.listID, s, ok)
		}
		if _, ok := SuiteFromListID(tc.listID | 0x01); ok {
			t.Fatalf("SuiteFromListID(%#x) accepted a non-zero low nibble", tc.listID|1)
		}
	}
	for _, b := range []uint8{0x00, 0x40, 0x50, 0xf0, 0x08} {
		if s, ok := SuiteFromListID(b); ok {
			t.Fatalf("SuiteFromListID(%#x) = %v, true", b, s)
		}
	}
	for _, s := range []Suite{0, 4, 15} {
		if s.Valid() || s.Hash() != 0 || s.HashLen() != 0 || s.NewHash() != nil {
			t.Fatalf("undefined suite %d looks defined", s)
		}
	}
}

func TestKeyTypeNames(t *testing.T) {
	for _, kt := range []KeyType{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096} {
		got, err := ParseKeyType(strings.ToUpper(kt.String()))
		if err != nil || got != kt {
			t.Fatalf("ParseKeyType(%q) = %v, %v", kt.String(), got, err)
		}
	}
	if _, err := ParseKeyType("dsa"); !errors.Is(err, ErrUnsupportedKeyType) {
		t.Fatalf("ParseKeyType(dsa): err = %v", err)
	}
	var zero KeyType
	if zero != ECDSAP256 {
		t.Fatal("the zero KeyType is not ECDSA P-256")
	}
}

// Formatting a private key in any verb must not print key material.
func TestPrivateKeyFormatting(t *testing.T) {
	for _, kt := range []KeyType{ECDSAP256, RSA2048} {
		k := testKey(t, kt)
		var secret string
		switch s := k.Signer().(type) {
		case *ecdsa.PrivateKey:
			b, _ := s.Bytes()
			secret = new(big.Int).SetBytes(b).String()
		case *rsa.PrivateKey:
			secret = s.D.String()
		}
		out := fmt.Sprintf("%v %+v %#v %s", k, k, k, k)
		if strings.Contains(out, secret[:20]) {
			t.Fatalf("%v: formatting prints the private key", kt)
		}
		if !strings.Contains(out, hitString(k.HIT())) {
			t.Fatalf("%v: formatting lacks the HIT: %s", kt, out)
		}
	}
}

func TestNames(t *testing.T) {
	for v, want := range map[fmt.Stringer]string{
		AlgRSA: "RSA", AlgECDSA: "ECDSA", AlgDSA: "DSA", AlgECDSALow: "ECDSA_LOW", AlgEdDSA: "EdDSA", Algorithm(99): "Algorithm(99)",
		SuiteRSADSASHA256: "RSA,DSA/SHA-256", SuiteECDSASHA384: "ECDSA/SHA-384", SuiteECDSALowSHA1: "ECDSA_LOW/SHA-1", Suite(7): "Suite(7)",
		KeyType(-1): "KeyType(-1)",
	} {
		if got := v.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

// TestPeerKeySize: a PublicKey parsed from a peer's HOST_ID keeps the Host
// Identity field and its HIT, not a decoded key. A node holds one per peer
// for as long as the association lasts (a relay one per registered host):
// for P-256 that is 128 octets (383 when it kept a decoded
// *ecdsa.PublicKey).
func TestPeerKeySize(t *testing.T) {
	const n, limit = 2000, 160
	hi := testKey(t, ECDSAP256).Public().HI()
	keys := make([]*PublicKey, 0, n)
	if _, err := ParseHostIdentity(AlgECDSA, hi); err != nil { // warm-up
		t.Fatal(err)
	}
	before := liveHeap()
	for range n {
		p, err := ParseHostIdentity(AlgECDSA, hi)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, p)
	}
	per := (int64(liveHeap()) - int64(before)) / n
	t.Logf("a parsed P-256 host identity retains %d octets", per)
	if per > limit {
		t.Errorf("a parsed P-256 host identity retains %d octets, want at most %d", per, limit)
	}
	runtime.KeepAlive(keys)
}

// liveHeap is the heap in use after two collections.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
