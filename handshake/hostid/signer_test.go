package hostid

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// extSigner stands for a key outside the process (a TPM, a KMS): a
// crypto.Signer that is not an *ecdsa.PrivateKey or *rsa.PrivateKey. It
// delegates to key, counts Sign calls and records the options it was
// given.
type extSigner struct {
	key   crypto.Signer
	mu    sync.Mutex
	calls int
	opts  crypto.SignerOpts
	// sign, if set, replaces the delegate's Sign.
	sign func(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

func (s *extSigner) Public() crypto.PublicKey { return s.key.Public() }

func (s *extSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.mu.Lock()
	s.calls++
	s.opts = opts
	s.mu.Unlock()
	if len(digest) != opts.HashFunc().Size() {
		return nil, fmt.Errorf("digest of %d octets for %v", len(digest), opts.HashFunc())
	}
	if s.sign != nil {
		return s.sign(rand, digest, opts)
	}
	return s.key.Sign(rand, digest, opts)
}

func (s *extSigner) last() (int, crypto.SignerOpts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.opts
}

func TestFromSigner(t *testing.T) {
	for _, kt := range testKeyTypes {
		t.Run(kt.String(), func(t *testing.T) {
			mem := testKey(t, kt)
			ext := &extSigner{key: mem.Signer()}
			k, err := FromSigner(ext)
			if err != nil {
				t.Fatal(err)
			}
			if k.HIT() != mem.HIT() || !k.Public().Equal(mem.Public()) {
				t.Fatalf("HIT %s, the same key in memory has %s", hitString(k.HIT()), hitString(mem.HIT()))
			}
			if k.Signer() != crypto.Signer(ext) {
				t.Fatalf("Signer() = %T, want the signer given", k.Signer())
			}
			// Enough ECDSA signatures that some have a DER INTEGER with a
			// leading zero octet and, likely, one shorter than the curve.
			for i := range 32 {
				msg := []byte(fmt.Sprintf("message %d", i))
				sig, alg, err := k.Sign(nil, msg)
				if err != nil {
					t.Fatal(err)
				}
				if alg != kt.Algorithm() || len(sig) != mem.Public().SignatureLen() {
					t.Fatalf("alg %v, %d octets; want %v, %d", alg, len(sig), kt.Algorithm(), mem.Public().SignatureLen())
				}
				if err := mem.Public().Verify(msg, sig, alg); err != nil {
					t.Fatalf("signature %d: %v", i, err)
				}
			}
			calls, opts := ext.last()
			if calls != 32 {
				t.Fatalf("signer called %d times for 32 signatures", calls)
			}
			switch kt.Algorithm() {
			case AlgECDSA:
				want := map[KeyType]crypto.Hash{ECDSAP256: crypto.SHA256, ECDSAP384: crypto.SHA384}[kt]
				if opts != want {
					t.Fatalf("ECDSA signer asked with %#v, want %v", opts, want)
				}
			case AlgRSA:
				pss, ok := opts.(*rsa.PSSOptions)
				if !ok || pss.Hash != crypto.SHA256 || pss.SaltLength != rsa.PSSSaltLengthEqualsHash {
					t.Fatalf("RSA signer asked with %#v, want PSS/SHA-256, salt = hash length", opts)
				}
			}
			if s := k.String(); !strings.Contains(s, "*hostid.extSigner") || !strings.Contains(s, hitString(k.HIT())) {
				t.Fatalf("String() = %q", s)
			}
		})
	}
}

// A signer-backed key cannot be written out, in memory or to a file.
func TestFromSignerNotExportable(t *testing.T) {
	k, err := FromSigner(&extSigner{key: testKey(t, ECDSAP256).Signer()})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := MarshalPEM(k); !errors.Is(err, ErrNotExportable) || b != nil || !strings.Contains(err.Error(), "extSigner") {
		t.Fatalf("MarshalPEM: %d octets, err = %v; want ErrNotExportable naming the signer", len(b), err)
	}
	path := filepath.Join(t.TempDir(), "node.key")
	if err := SaveFile(path, k); !errors.Is(err, ErrNotExportable) {
		t.Fatalf("SaveFile: err = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("SaveFile left a file: %v", err)
	}
	noTempFiles(t, filepath.Dir(path))
}

// An in-memory key given to FromSigner stays an in-memory key: signed
// with directly, and exportable.
func TestFromSignerInMemory(t *testing.T) {
	for _, kt := range []KeyType{ECDSAP256, RSA2048} {
		mem := testKey(t, kt)
		k, err := FromSigner(mem.Signer())
		if err != nil {
			t.Fatal(err)
		}
		if k.external() || k.HIT() != mem.HIT() {
			t.Fatalf("%v: external %v", kt, k.external())
		}
		b, err := MarshalPEM(k)
		if err != nil {
			t.Fatalf("%v: %v", kt, err)
		}
		if k2, err := ParsePEM(b); err != nil || k2.HIT() != mem.HIT() {
			t.Fatalf("%v: PEM round trip: %v", kt, err)
		}
	}
}

func TestFromSignerRejects(t *testing.T) {
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		s      crypto.Signer
		want   error
		naming []string // the error must say these
	}{
		{"nil", nil, ErrUnsupportedKeyType, []string{"nil"}},
		{"nil *ecdsa.PrivateKey", (*ecdsa.PrivateKey)(nil), ErrUnsupportedKeyType, []string{"nil *ecdsa.PrivateKey"}},
		{"nil *rsa.PrivateKey", (*rsa.PrivateKey)(nil), ErrUnsupportedKeyType, []string{"nil *rsa.PrivateKey"}},
		{"P-224 signer", &extSigner{key: p224}, ErrUnsupportedCurve, []string{"P-224", "extSigner"}},
		{"P-224 in memory", p224, ErrUnsupportedCurve, []string{"P-224"}},
		{"P-521 signer", &extSigner{key: p521}, ErrUnsupportedCurve, []string{"P-521"}},
		{"Ed25519 signer", &extSigner{key: edKey}, ErrUnsupportedKeyType, []string{"ed25519.PublicKey", "EdDSA", "extSigner"}},
		{"Ed25519 in memory", edKey, ErrUnsupportedKeyType, []string{"ed25519.PublicKey", "EdDSA"}},
		{"RSA-1024 signer", &extSigner{key: small}, ErrKeySize, []string{"1024"}},
		{"odd public key", oddSigner{}, ErrUnsupportedKeyType, []string{"string", "hostid.oddSigner"}},
		{"nil ECDSA public key", nilPubSigner{}, ErrInvalidKey, []string{"nil"}},
	} {
		k, err := FromSigner(tc.s)
		if !errors.Is(err, tc.want) || k != nil {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
			continue
		}
		for _, w := range tc.naming {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, w)
			}
		}
	}
	// An Ed25519 key in a PEM file says what it is, too.
	der, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); !errors.Is(err, ErrUnsupportedKeyType) || !strings.Contains(err.Error(), "EdDSA") {
		t.Errorf("Ed25519 PEM: err = %v", err)
	}
}

type oddSigner struct{}

func (oddSigner) Public() crypto.PublicKey                                  { return "a string" }
func (oddSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return nil, nil }

type nilPubSigner struct{}

func (nilPubSigner) Public() crypto.PublicKey                                  { return (*ecdsa.PublicKey)(nil) }
func (nilPubSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return nil, nil }

// A signer that fails, returns something other than DER, or signs with
// another key than its Public method names gives an error from Sign, not a
// packet the peer drops.
func TestFromSignerBadSignatures(t *testing.T) {
	mem := testKey(t, ECDSAP256).Signer().(*ecdsa.PrivateKey)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	errToken := errors.New("token removed")
	for _, tc := range []struct {
		name string
		sign func(io.Reader, []byte, crypto.SignerOpts) ([]byte, error)
		want error
		says string
	}{
		{"failure", func(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return nil, errToken }, errToken, "token removed"},
		{"raw r|s instead of DER", func(r io.Reader, d []byte, _ crypto.SignerOpts) ([]byte, error) {
			rr, ss, err := ecdsa.Sign(r, mem, d)
			if err != nil {
				return nil, err
			}
			out := make([]byte, 64)
			rr.FillBytes(out[:32])
			ss.FillBytes(out[32:])
			return out, nil
		}, ErrInvalidSignature, "DER"},
		{"another key", func(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) { return other.Sign(r, d, o) }, ErrInvalidSignature, "another key"},
	} {
		k, err := FromSigner(&extSigner{key: mem, sign: tc.sign})
		if err != nil {
			t.Fatal(err)
		}
		sig, _, err := k.Sign(nil, []byte("m"))
		if !errors.Is(err, tc.want) || sig != nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "extSigner") {
			t.Errorf("%s: %d octets, err = %v; want %v saying %q", tc.name, len(sig), err, tc.want, tc.says)
		}
	}
}

// derSig is an independent encoder: encoding/asn1, as crypto/ecdsa uses
// for SignASN1 through cryptobyte.
func derSig(t *testing.T, r, s *big.Int) []byte {
	t.Helper()
	b, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rawSig(r, s *big.Int, size int) []byte {
	out := make([]byte, 2*size)
	r.FillBytes(out[:size])
	s.FillBytes(out[size:])
	return out
}

func hexInt(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic(s)
	}
	return v
}

func TestECDSARawFromDER(t *testing.T) {
	ones := strings.Repeat("ff", 32)
	for _, tc := range []struct {
		name string
		size int
		r, s *big.Int
		der  string // the INTEGER forms, checked too: that is the point
	}{
		{"high bit set: DER adds a zero octet", 32, hexInt(ones), hexInt("80" + strings.Repeat("01", 31)), "3046022100" + ones + "022100" + "80" + strings.Repeat("01", 31)},
		{"one leading zero octet: DER drops it", 32, hexInt("7f" + strings.Repeat("02", 30)), hexInt("01"), "3024021f7f" + strings.Repeat("02", 30) + "020101"},
		{"two leading zero octets", 32, hexInt("0203"), hexInt(strings.Repeat("33", 30)), "30240202" + "0203" + "021e" + strings.Repeat("33", 30)},
		{"high bit after leading zeros", 32, hexInt("80" + strings.Repeat("44", 29)), hexInt("05"), "3024021f0080" + strings.Repeat("44", 29) + "020105"},
		{"P-384 sizes", 48, hexInt("ff" + strings.Repeat("00", 47)), hexInt("01" + strings.Repeat("00", 46)), "3064023100ff" + strings.Repeat("00", 47) + "022f" + "01" + strings.Repeat("00", 46)},
		{"long-form length (P-521 sizes)", 66, hexInt("01" + strings.Repeat("ff", 65)), hexInt("01" + strings.Repeat("ee", 65)), "308188024201" + strings.Repeat("ff", 65) + "024201" + strings.Repeat("ee", 65)},
	} {
		der := derSig(t, tc.r, tc.s)
		if got := fmt.Sprintf("%x", der); got != tc.der {
			t.Fatalf("%s: test vector: asn1 gives %s, table says %s", tc.name, got, tc.der)
		}
		got, err := ecdsaRawFromDER(der, tc.size)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if want := rawSig(tc.r, tc.s, tc.size); !bytes.Equal(got, want) {
			t.Fatalf("%s:\n got %x\nwant %x", tc.name, got, want)
		}
	}
}

// Random r and s of every length, compared with encoding/asn1 and
// big.Int.FillBytes.
func TestECDSARawFromDERRandom(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, size := range []int{32, 48} {
		for i := range 4000 {
			v := func() *big.Int {
				b := make([]byte, 1+rng.IntN(size))
				for j := range b {
					b[j] = byte(rng.Uint32())
				}
				if i%3 == 0 {
					b[0] |= 0x80 // the DER zero octet
				}
				if new(big.Int).SetBytes(b).Sign() == 0 {
					b[len(b)-1] = 1
				}
				return new(big.Int).SetBytes(b)
			}
			r, s := v(), v()
			got, err := ecdsaRawFromDER(derSig(t, r, s), size)
			if err != nil {
				t.Fatalf("r %x s %x: %v", r, s, err)
			}
			if want := rawSig(r, s, size); !bytes.Equal(got, want) {
				t.Fatalf("r %x s %x:\n got %x\nwant %x", r, s, got, want)
			}
		}
	}
}

func TestECDSARawFromDERRejects(t *testing.T) {
	x := strings.Repeat("11", 32)
	for _, tc := range []struct{ name, der string }{
		{"empty", ""},
		{"SET instead of SEQUENCE", "3106020101020101"},
		{"OCTET STRING", "0406020101020101"},
		{"truncated", "30060201010201"},
		{"trailing octets", "300602010102010100"},
		{"one INTEGER", "3003020101"},
		{"three INTEGERs", "3009020101020101020101"},
		{"BIT STRING for s", "3006020101030101"},
		{"negative r", "3006020180020101"},
		{"zero r", "3006020100020101"},
		{"empty r", "30050200020101"},
		{"superfluous zero octet", "300702020001020101"},
		{"two zero octets before high bit", "30080203000080020101"},
		{"r longer than the curve", "302602210111" + strings.Repeat("11", 31) + "020101"},
		{"r longer than the curve with zero octet", "3027022200ff" + x + "020101"},
		{"long form for a short length", "30810602010102010101"},
		{"indefinite length", "3080020101020101" + "0000"},
		{"two-octet long form", "3082000602010102010101"},
		{"INTEGER length beyond SEQUENCE", "3006020501020101"},
	} {
		der, err := hexBytes(tc.der)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got, err := ecdsaRawFromDER(der, 32); !errors.Is(err, ErrInvalidSignature) || got != nil {
			t.Errorf("%s: %x, err = %v; want ErrInvalidSignature", tc.name, got, err)
		}
	}
}

func hexBytes(s string) ([]byte, error) {
	var b []byte
	_, err := fmt.Sscanf(s, "%x", &b)
	if s == "" {
		return nil, nil
	}
	return b, err
}

func TestKeyTypes(t *testing.T) {
	ts := KeyTypes()
	if len(ts) == 0 || ts[0] != ECDSAP256 {
		t.Fatalf("KeyTypes() = %v, want the default first", ts)
	}
	seen := map[KeyType]bool{}
	for _, kt := range ts {
		if got, err := ParseKeyType(kt.String()); err != nil || got != kt || kt.Algorithm() == 0 {
			t.Fatalf("%v: ParseKeyType %v %v, Algorithm %v", kt, got, err, kt.Algorithm())
		}
		seen[kt] = true
	}
	for _, kt := range []KeyType{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096} {
		if !seen[kt] {
			t.Errorf("KeyTypes() lacks %v", kt)
		}
	}
}
