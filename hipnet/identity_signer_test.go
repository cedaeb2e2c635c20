package hipnet

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// signerCounting stands for a key in a TPM or a KMS: a crypto.Signer that
// is not an *ecdsa.PrivateKey or *rsa.PrivateKey, so that the node can
// only sign through its Sign method. It delegates to key and counts.
type signerCounting struct {
	key   crypto.Signer
	calls atomic.Int64
}

func (s *signerCounting) Public() crypto.PublicKey { return s.key.Public() }

func (s *signerCounting) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.calls.Add(1)
	return s.key.Sign(rand, digest, opts)
}

// signerKinds are the key kinds a signer-backed identity is tested with.
var signerKinds = []string{"ecdsa-p256", "ecdsa-p384", "rsa2048"}

func signerNewKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch kind {
	case "ecdsa-p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa-p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signerIdentity returns an identity backed by a counting signer over a
// new key of the given kind.
func signerIdentity(t testing.TB, kind string) (*Identity, *signerCounting) {
	t.Helper()
	s := &signerCounting{key: signerNewKey(t, kind)}
	id, err := IdentityFromSigner(s)
	if err != nil {
		t.Fatalf("IdentityFromSigner(%s): %v", kind, err)
	}
	return id, s
}

func signerNode(t testing.TB, id *Identity) *Node {
	t.Helper()
	n, err := NewNode(Config{Identity: id, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("NewNode with %v: %v", id, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func signerCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// signerEcho echoes datagrams on port "udp" and streams on port "tcp" of n.
func signerEcho(t testing.TB, n *Node, port int) {
	t.Helper()
	p := ":" + strconv.Itoa(port)
	pc, err := n.ListenPacket("udp", p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:k], from)
		}
	}()
	ln, err := n.Listen("tcp", p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
}

// Two nodes whose keys are reachable only through crypto.Signer complete
// a base exchange, exchange datagrams over ESP and a stream over QUIC/TLS,
// and the HIP signatures of the exchange went through the signers.
func TestSignerIdentityBaseExchange(t *testing.T) {
	for _, kind := range signerKinds {
		t.Run(kind, func(t *testing.T) {
			idA, sa := signerIdentity(t, kind)
			idB, sb := signerIdentity(t, kind)
			a, b := signerNode(t, idA), signerNode(t, idB)
			if a.HIT() != idA.HIT() || b.HIT() != idB.HIT() {
				t.Fatal("node HIT is not its identity's HIT")
			}
			signerEcho(t, b, 7)
			a.AddPeer(b.HIT(), b.LocalAddr())
			// Starting a node may sign (its TLS certificate); count from
			// here, when only the base exchange signs.
			beforeA, beforeB := sa.calls.Load(), sb.calls.Load()

			ctx := signerCtx(t, 20*time.Second)
			addr := (&Addr{HIT: b.HIT(), Port: 7}).String()
			dc, err := a.DialContext(ctx, "udp", addr)
			if err != nil {
				t.Fatalf("udp dial (base exchange): %v", err)
			}
			defer dc.Close()
			// The initiator signs I2, the responder R1 and R2 (RFC 7401
			// §5.3): both signers must have been used.
			if sa.calls.Load() == beforeA || sb.calls.Load() == beforeB {
				t.Fatalf("base exchange done, Sign calls: initiator %d→%d, responder %d→%d",
					beforeA, sa.calls.Load(), beforeB, sb.calls.Load())
			}
			msg := []byte("datagram through a " + kind + " signer")
			buf := make([]byte, 2048)
			for attempt := 0; ; attempt++ {
				if _, err := dc.Write(msg); err != nil {
					t.Fatal(err)
				}
				dc.SetReadDeadline(time.Now().Add(time.Second))
				k, err := dc.Read(buf)
				if err == nil {
					if !bytes.Equal(buf[:k], msg) {
						t.Fatalf("echo %q, want %q", buf[:k], msg)
					}
					break
				}
				if attempt == 4 {
					t.Fatalf("no datagram echo: %v", err)
				}
			}

			// A stream: its QUIC connection is keyed from the association
			// (a TLS 1.3 PSK, streams psk.go), so it needs no signature.
			tlsA, tlsB := sa.calls.Load(), sb.calls.Load()
			sc, err := a.DialContext(ctx, "tcp", addr)
			if err != nil {
				t.Fatalf("tcp dial: %v", err)
			}
			defer sc.Close()
			sc.SetDeadline(time.Now().Add(10 * time.Second))
			msg = bytes.Repeat([]byte(kind), 1000)
			go sc.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(sc, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("stream echo: %v", err)
			}
			if sa.calls.Load() != tlsA || sb.calls.Load() != tlsB {
				t.Fatalf("the stream's handshake signed: %d→%d, %d→%d",
					tlsA, sa.calls.Load(), tlsB, sb.calls.Load())
			}
		})
	}
}

// A signer-backed identity has the HIT of the same key read from PEM
// written by crypto/x509 (not by hipnet), in every format hipnet reads.
func TestSignerIdentityHITMatchesPEM(t *testing.T) {
	for _, kind := range signerKinds {
		key := signerNewKey(t, kind)
		ext, err := IdentityFromSigner(&signerCounting{key: key})
		if err != nil {
			t.Fatal(err)
		}
		pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		blocks := []*pem.Block{{Type: "PRIVATE KEY", Bytes: pkcs8}}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			sec1, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			blocks = append(blocks, &pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})
		case *rsa.PrivateKey:
			blocks = append(blocks, &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
		}
		for _, blk := range blocks {
			mem, err := ParseIdentityPEM(pem.EncodeToMemory(blk))
			if err != nil {
				t.Fatalf("%s %s: %v", kind, blk.Type, err)
			}
			if mem.HIT() != ext.HIT() {
				t.Fatalf("%s %s: HIT %v from PEM, %v from the signer", kind, blk.Type, mem.HIT(), ext.HIT())
			}
		}
		// And the in-memory key handed over as a crypto.Signer.
		if direct, err := IdentityFromSigner(key); err != nil || direct.HIT() != ext.HIT() {
			t.Fatalf("%s: IdentityFromSigner(%T): %v", kind, key, err)
		}
	}
}

func TestIdentityPEMRoundTrip(t *testing.T) {
	for _, kt := range []KeyType{ECDSAP256, ECDSAP384, RSA2048} {
		id, err := GenerateIdentityOf(kt)
		if err != nil {
			t.Fatal(err)
		}
		b, err := id.MarshalPEM()
		if err != nil {
			t.Fatalf("%v: %v", kt, err)
		}
		if !bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----\n")) {
			t.Fatalf("%v: not PKCS#8 PEM: %.40s", kt, b)
		}
		id2, err := ParseIdentityPEM(b)
		if err != nil || id2.HIT() != id.HIT() {
			t.Fatalf("%v: round trip: %v", kt, err)
		}
		// The file format is the same.
		path := filepath.Join(t.TempDir(), "node.key")
		if err := id.Save(path); err != nil {
			t.Fatal(err)
		}
		if file, err := os.ReadFile(path); err != nil || !bytes.Equal(file, b) {
			t.Fatalf("%v: Save wrote other bytes than MarshalPEM: %v", kt, err)
		}
	}
}

// hipnet's errors say "hipnet: identity:", not the internal package.
func signerCheckMessage(t *testing.T, what string, err error, says ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "hipnet: identity: ") || strings.Contains(msg, "hostid") {
		t.Errorf("%s: message %q should start \"hipnet: identity: \" and not name package hostid", what, msg)
	}
	for _, s := range says {
		if !strings.Contains(msg, s) {
			t.Errorf("%s: message %q does not say %q", what, msg, s)
		}
	}
}

func TestSignerIdentityNotExportable(t *testing.T) {
	id, _ := signerIdentity(t, "ecdsa-p256")
	b, err := id.MarshalPEM()
	if !errors.Is(err, ErrNotExportable) || b != nil {
		t.Fatalf("MarshalPEM of a signer-backed identity: %d octets, err = %v", len(b), err)
	}
	signerCheckMessage(t, "MarshalPEM", err, "cannot be exported", "signerCounting")
	path := filepath.Join(t.TempDir(), "node.key")
	err = id.Save(path)
	if !errors.Is(err, ErrNotExportable) {
		t.Fatalf("Save: err = %v", err)
	}
	signerCheckMessage(t, "Save", err)
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Save of a signer-backed identity left a file: %v", err)
	}
}

func TestSignerIdentityUnsupported(t *testing.T) {
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		s    crypto.Signer
		says []string
	}{
		{"P-224 signer", &signerCounting{key: p224}, []string{"P-224", "signerCounting"}},
		{"Ed25519 signer", &signerCounting{key: ed}, []string{"ed25519.PublicKey", "EdDSA"}},
		{"Ed25519 key", ed, []string{"ed25519.PublicKey", "EdDSA"}},
		{"RSA-1024 signer", &signerCounting{key: small}, []string{"1024 bits"}},
		{"nil", nil, []string{"nil"}},
	} {
		id, err := IdentityFromSigner(tc.s)
		if id != nil {
			t.Fatalf("%s: accepted as %v", tc.name, id)
		}
		signerCheckMessage(t, tc.name, err, tc.says...)
	}
}

func TestIdentityErrorMessages(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadIdentity(filepath.Join(dir, "missing.key"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadIdentity of a missing file: err = %v, want fs.ErrNotExist", err)
	}
	signerCheckMessage(t, "missing file", err, "missing.key")
	_, err = ParseIdentityPEM([]byte("not PEM"))
	signerCheckMessage(t, "ParseIdentityPEM", err, "no usable private key")
	_, err = GenerateIdentityOf(KeyType(99))
	signerCheckMessage(t, "GenerateIdentityOf(99)", err, "rsa4096")
	if runtime.GOOS != "windows" {
		id, err := GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "open.key")
		if err := id.Save(path); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = LoadIdentity(path)
		signerCheckMessage(t, "mode 0644", err, "chmod 600")
	}
}

// EnsureIdentity tells the caller when it created the key file, so that
// the caller can say so; later calls load the same identity.
func TestEnsureIdentityReportsCreation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "node.key")
	id, created, err := EnsureIdentity(path)
	if err != nil || !created {
		t.Fatalf("first EnsureIdentity: created %v, err %v", created, err)
	}
	if fi, err := os.Stat(path); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Fatalf("key file: %v %v", fi, err)
	}
	again, created, err := EnsureIdentity(path)
	if err != nil || created || again.HIT() != id.HIT() {
		t.Fatalf("second EnsureIdentity: created %v, err %v, same HIT %v", created, err, again.HIT() == id.HIT())
	}
	if old, err := LoadOrCreateIdentity(path); err != nil || old.HIT() != id.HIT() {
		t.Fatalf("LoadOrCreateIdentity: %v", err)
	}
	// A key file that is not a key is an error, never replaced.
	bad := filepath.Join(filepath.Dir(path), "bad.key")
	if err := os.WriteFile(bad, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, created, err = EnsureIdentity(bad)
	if created {
		t.Fatal("EnsureIdentity replaced a corrupt key file")
	}
	signerCheckMessage(t, "corrupt key file", err, "bad.key")
}
