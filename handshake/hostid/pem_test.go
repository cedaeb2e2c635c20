package hostid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestPEMRoundTrip(t *testing.T) {
	for _, kt := range testKeyTypes {
		k := testKey(t, kt)
		b, err := MarshalPEM(k)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "-----BEGIN PRIVATE KEY-----\n") {
			t.Fatalf("%v: not a PKCS#8 PRIVATE KEY block:\n%s", kt, b[:40])
		}
		k2, err := ParsePEM(b)
		if err != nil {
			t.Fatalf("%v: %v", kt, err)
		}
		if !k2.Public().Equal(k.Public()) || k2.HIT() != k.HIT() {
			t.Fatalf("%v: PEM round trip changed the identity", kt)
		}
		sig, alg, err := k2.Sign(nil, []byte("m"))
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Public().Verify([]byte("m"), sig, alg); err != nil {
			t.Fatalf("%v: loaded key signs differently: %v", kt, err)
		}
	}
}

// Keys written by other tools: SEC 1 "EC PRIVATE KEY" after an
// "EC PARAMETERS" block (openssl ecparam -genkey), PKCS#1 "RSA PRIVATE KEY".
func TestParsePEMOtherFormats(t *testing.T) {
	ek := testKey(t, ECDSAP384).Signer().(*ecdsa.PrivateKey)
	der, err := x509.MarshalECPrivateKey(ek)
	if err != nil {
		t.Fatal(err)
	}
	in := append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 5, 43, 129, 4, 0, 34}}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
	k, err := ParsePEM(in)
	if err != nil || k.HIT() != testKey(t, ECDSAP384).HIT() {
		t.Fatalf("SEC 1 key: %v", err)
	}
	rk := testKey(t, RSA2048).Signer().(*rsa.PrivateKey)
	k, err = ParsePEM(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}))
	if err != nil || k.HIT() != testKey(t, RSA2048).HIT() {
		t.Fatalf("PKCS#1 key: %v", err)
	}
}

func TestParsePEMRejects(t *testing.T) {
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der224, _ := x509.MarshalPKCS8PrivateKey(p224)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	derSmall, _ := x509.MarshalPKCS8PrivateKey(small)
	good, _ := MarshalPEM(testKey(t, ECDSAP256))
	encrypted := strings.Replace(string(good), "-----BEGIN PRIVATE KEY-----\n",
		"-----BEGIN PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\n", 1)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrInvalidPEM},
		{"not PEM", []byte("hello"), ErrInvalidPEM},
		{"public key only", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}), ErrInvalidPEM},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), ErrInvalidPEM},
		{"PKCS#8 encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), ErrInvalidPEM},
		{"legacy encrypted", []byte(encrypted), ErrInvalidPEM},
		{"P-224", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der224}), ErrUnsupportedCurve},
		{"RSA-1024", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: derSmall}), ErrKeySize},
	} {
		if _, err := ParsePEM(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// noTempFiles fails if a temporary key file was left in dir.
func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

func TestSaveLoadFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix permissions")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "node.key")
	k := testKey(t, ECDSAP256)
	if err := SaveFile(path, k); err != nil {
		t.Fatal(err)
	}
	if m := fileMode(t, path); m != 0o600 {
		t.Fatalf("mode %#o, want 0600", m)
	}
	k2, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Public().Equal(k.Public()) {
		t.Fatal("loaded key differs")
	}

	// Replacing a file that had loose permissions leaves a 0600 file.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadFile(path)
	var pe *PermissionError
	if !errors.Is(err, ErrInsecurePermissions) || !errors.As(err, &pe) || pe.Mode.Perm() != 0o644 || pe.Path != path {
		t.Fatalf("0644 key file: err = %v, want a *PermissionError", err)
	}
	if !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("error does not say how to fix it: %v", err)
	}
	for _, m := range []os.FileMode{0o640, 0o604, 0o660, 0o700 | 0o010} {
		os.Chmod(path, m)
		if _, err := LoadFile(path); !errors.Is(err, ErrInsecurePermissions) {
			t.Fatalf("mode %#o accepted", m)
		}
	}
	os.Chmod(path, 0o400)
	if _, err := LoadFile(path); err != nil {
		t.Fatalf("mode 0400 refused: %v", err)
	}
	os.Chmod(path, 0o644)
	k3 := testKey(t, RSA2048)
	if err := SaveFile(path, k3); err != nil {
		t.Fatal(err)
	}
	if m := fileMode(t, path); m != 0o600 {
		t.Fatalf("mode after overwrite %#o, want 0600", m)
	}
	if k4, err := LoadFile(path); err != nil || k4.HIT() != k3.HIT() {
		t.Fatalf("overwritten file: %v", err)
	}
	noTempFiles(t, dir)

	if _, err := LoadFile(filepath.Join(dir, "missing.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v", err)
	}
	if _, err := LoadFile(dir); err == nil {
		t.Fatal("a directory loaded as a key")
	}
	garbage := filepath.Join(dir, "garbage.key")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	if _, err := LoadFile(garbage); !errors.Is(err, ErrInvalidPEM) || !strings.Contains(err.Error(), garbage) {
		t.Fatalf("garbage file: err = %v", err)
	}
	if err := SaveFile(filepath.Join(dir, "no", "such", "dir.key"), k); err == nil {
		t.Fatal("SaveFile into a missing directory succeeded")
	}
}

func TestLoadOrCreate(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix permissions")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "node.key")
	k, created, err := LoadOrCreate(path, ECDSAP384, nil)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	if k.Public().Algorithm() != AlgECDSA || !strings.HasPrefix(k.Public().String(), "ECDSA P-384") {
		t.Fatalf("created %v, want ECDSA P-384", k.Public())
	}
	if m := fileMode(t, path); m != 0o600 {
		t.Fatalf("mode %#o", m)
	}
	if m := fileMode(t, filepath.Dir(path)); m != 0o700 {
		t.Fatalf("created directory mode %#o, want 0700", m)
	}
	k2, created, err := LoadOrCreate(path, ECDSAP256, nil)
	if err != nil || created {
		t.Fatalf("second call: created=%v err=%v", created, err)
	}
	if k2.HIT() != k.HIT() {
		t.Fatal("second call returned another key")
	}
	noTempFiles(t, filepath.Dir(path))

	// A key file with loose permissions is an error, never replaced.
	os.Chmod(path, 0o644)
	if _, _, err := LoadOrCreate(path, ECDSAP256, nil); !errors.Is(err, ErrInsecurePermissions) {
		t.Fatalf("0644 file: err = %v", err)
	}
	os.Chmod(path, 0o600)
	if k3, _ := LoadFile(path); k3 == nil || k3.HIT() != k.HIT() {
		t.Fatal("key file changed")
	}
}

// Concurrent LoadOrCreate calls on one path all end with the key on disk.
func TestLoadOrCreateRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	const n = 4
	hits := make(chan [16]byte, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			k, _, err := LoadOrCreate(path, ECDSAP256, nil)
			if err != nil {
				errs <- err
				return
			}
			hits <- k.HIT()
		}()
	}
	var first [16]byte
	for i := range n {
		select {
		case err := <-errs:
			t.Fatal(err)
		case h := <-hits:
			if i == 0 {
				first = h
			} else if h != first {
				t.Fatal("concurrent callers got different keys")
			}
		}
	}
	k, err := LoadFile(path)
	if err != nil || k.HIT() != first {
		t.Fatalf("key on disk differs from the one returned: %v", err)
	}
}
