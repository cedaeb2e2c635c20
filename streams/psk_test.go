package streams

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// countingSigner counts the signatures made with a host identity key.
type countingSigner struct {
	crypto.Signer
	n atomic.Int64
}

func (s *countingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.n.Add(1)
	return s.Signer.Sign(r, digest, opts)
}

// countingIdentity is a host identity whose signatures are counted: a
// crypto.Signer, as a key in a TPM would be.
func countingIdentity(t *testing.T) (*hostid.PrivateKey, *countingSigner) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &countingSigner{Signer: k}
	id, err := hostid.FromSigner(s)
	if err != nil {
		t.Fatal(err)
	}
	return id, s
}

// tlsStates returns the TLS state of the connection between a and b, on
// each side.
func tlsStates(t *testing.T, a, b *node) (client, server tls.ConnectionState) {
	t.Helper()
	state := func(n *node, peer wire.HIT) (tls.ConnectionState, bool) {
		n.m.mu.Lock()
		defer n.m.mu.Unlock()
		if p := n.m.peers[peer]; p != nil && p.cur != nil {
			return p.cur.c.ConnectionState().TLS, true
		}
		return tls.ConnectionState{}, false
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		cs, ok1 := state(a, b.hit)
		ss, ok2 := state(b, a.hit)
		if ok1 && ok2 {
			return cs, ss
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection between the pair")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// First contact with a secret: the QUIC handshake resumes the PSK
// session on both sides, and neither host identity signs anything.
func TestPSKFirstContactNoSignature(t *testing.T) {
	ka, sa := countingIdentity(t)
	kb, sb := countingIdentity(t)
	a, b := newPair(t, ka, kb)
	echoOn(t, b, 80)
	before := [2]int64{sa.n.Load(), sb.n.Load()} // New signed each host's certificate
	if err := roundTrip(t, a.m, b.hit, 80, []byte("first contact")); err != nil {
		t.Fatal(err)
	}
	if after := [2]int64{sa.n.Load(), sb.n.Load()}; after != before {
		t.Errorf("host identity signatures %v before the handshake, %v after", before, after)
	}
	cs, ss := tlsStates(t, a, b)
	if !cs.DidResume || !ss.DidResume {
		t.Errorf("DidResume: client %v, server %v, want true on both", cs.DidResume, ss.DidResume)
	}
	if want := clientCurves[0]; cs.CurveID != want || ss.CurveID != want {
		t.Errorf("key exchange %v/%v, want %v (psk_dhe_ke)", cs.CurveID, ss.CurveID, want)
	}
	// The client sees, as the server's certificate, the synthetic one it
	// made for the server's host identity; the server sees its own
	// placeholder, which names no host (psk.go).
	for _, c := range []struct {
		cs   tls.ConnectionState
		name wire.HIT
		key  *hostid.PublicKey
	}{{cs, b.hit, kb.Public()}, {ss, wire.HIT{}, kb.Public()}} {
		if len(c.cs.PeerCertificates) != 1 || len(c.cs.PeerCertificates[0].Signature) != 0 {
			t.Errorf("peer certificates %v: not one synthetic certificate", c.cs.PeerCertificates)
			continue
		}
		leaf := c.cs.PeerCertificates[0]
		if !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(c.key.CryptoPublicKey()) ||
			leaf.VerifyHostname(c.name.String()) != nil {
			t.Errorf("peer certificate %v: not the synthetic certificate of %s", leaf.Subject, c.name)
		}
	}
	if p, err := b.m.placeholder(); err != nil || !p.leaf.Equal(ss.PeerCertificates[0]) {
		t.Errorf("server's peer certificate is not its placeholder (%v)", err)
	}
}

// Without a secret on either end, the handshake is the certificate one:
// it works, does not resume, and signs.
func TestPSKFallbackWithoutSecret(t *testing.T) {
	for _, side := range []string{"server", "client", "both"} {
		t.Run(side, func(t *testing.T) {
			ka, sa := countingIdentity(t)
			kb, sb := countingIdentity(t)
			a, b := newPair(t, ka, kb)
			if side != "client" {
				b.dir.setSecret(a.hit, nil)
			}
			if side != "server" {
				a.dir.setSecret(b.hit, nil)
			}
			echoOn(t, b, 80)
			before := sa.n.Load() + sb.n.Load()
			if err := roundTrip(t, a.m, b.hit, 80, []byte("certificates")); err != nil {
				t.Fatal(err)
			}
			cs, ss := tlsStates(t, a, b)
			if cs.DidResume || ss.DidResume {
				t.Errorf("DidResume: client %v, server %v, want false", cs.DidResume, ss.DidResume)
			}
			if n := sa.n.Load() + sb.n.Load() - before; n != 2 {
				t.Errorf("%d signatures, want 2 (one CertificateVerify each)", n)
			}
		})
	}
}

// records keeps the messages logged.
type records struct {
	mu   sync.Mutex
	msgs []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		msg += " " + a.String()
		return true
	})
	r.msgs = append(r.msgs, msg)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.msgs, "\n")
}

func (r *records) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// The two ends hold different secrets (they disagree about the
// association): the server cannot verify the binder and aborts, and the
// client falls back to the certificate handshake, which connects them.
func TestPSKMismatchFallsBack(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	log := &records{}
	a := newNode(t, ka, func(c *Config) { c.Logger = slog.New(log) })
	b := newNode(t, kb)
	connect(a.pc, b.pc)
	a.dir.set(b.hit, kb.Public())
	b.dir.set(a.hit, ka.Public())
	s1, s2 := make([]byte, SecretSize), make([]byte, SecretSize)
	rand.Read(s1)
	rand.Read(s2)
	a.dir.setSecret(b.hit, s1)
	b.dir.setSecret(a.hit, s2)
	echoOn(t, b, 80)
	if err := roundTrip(t, a.m, b.hit, 80, []byte("mismatch")); err != nil {
		t.Fatal(err)
	}
	cs, ss := tlsStates(t, a, b)
	if cs.DidResume || ss.DidResume {
		t.Errorf("DidResume: client %v, server %v, want false", cs.DidResume, ss.DidResume)
	}
	if n := log.count("rejected our PSK"); n != 1 {
		t.Errorf("%d PSK rejections logged, want 1", n)
	}
}

// A secret of the wrong size is no secret: certificates.
func TestPSKBadSecretSize(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	a.dir.setSecret(b.hit, make([]byte, 16))
	echoOn(t, b, 80)
	if err := roundTrip(t, a.m, b.hit, 80, []byte("short")); err != nil {
		t.Fatal(err)
	}
	if cs, _ := tlsStates(t, a, b); cs.DidResume {
		t.Error("resumed with a 16-octet secret")
	}
}

// The server's UnwrapSession accepts only the identity naming the ESP
// peer dialing it, and never a ticket of its own.
func TestPSKUnwrap(t *testing.T) {
	ka, kb, kc := testIdentities(t)
	a, b := newPair(t, ka, kb)
	hc := wire.HIT(kc.HIT())
	b.dir.set(hc, kc.Public())
	secret, _ := b.dir.secret(a.hit)
	p := &pskServer{m: b.m, peer: a.hit, secret: secret}
	other := append([]byte("hipnet-psk2"), pskIdentity(a.hit, b.hit)[len(pskLabel):]...)
	for _, tc := range []struct {
		name     string
		identity []byte
		ok       bool
	}{
		{"the ESP peer dialing us", pskIdentity(a.hit, b.hit), true},
		{"us dialing the ESP peer (reflection)", pskIdentity(b.hit, a.hit), false},
		{"another HIT dialing us", pskIdentity(hc, b.hit), false},
		{"the ESP peer dialing another HIT", pskIdentity(a.hit, hc), false},
		{"another label", other, false},
		{"our own ticket", noTicket, false},
		{"empty", nil, false},
	} {
		p.leaf = nil
		s, err := p.unwrap(tc.identity, tls.ConnectionState{})
		if err != nil || (s != nil) != tc.ok || (p.leaf != nil) != tc.ok {
			t.Errorf("%s: session %v, err %v; want a session: %v", tc.name, s != nil, err, tc.ok)
		}
	}
	if ticket, err := p.wrap(tls.ConnectionState{}, nil); err != nil || !bytes.Equal(ticket, noTicket) {
		t.Errorf("wrap: %q, %v", ticket, err)
	}
	// The keys of the two directions differ.
	k1, _ := pskKey(secret, pskIdentity(a.hit, b.hit))
	k2, _ := pskKey(secret, pskIdentity(b.hit, a.hit))
	if bytes.Equal(k1, k2) || bytes.Equal(k1, secret) {
		t.Error("the PSK does not depend on the direction")
	}
}

// A client at HIT A that holds the PSK of (A, B), or even that of (C, B),
// cannot resume a session claiming to be C: B's UnwrapSession takes only
// the identity of the HIT the ESP SA names, so B falls back to the
// certificate handshake, in which A can only be A. The client here is
// raw quic-go with a forged session cache and no certificate.
func TestPSKIdentityOfAnotherHIT(t *testing.T) {
	ka, kb, kc := testIdentities(t)
	b := newNode(t, kb)
	ha, hc := wire.HIT(ka.HIT()), wire.HIT(kc.HIT())
	sAB, sCB := make([]byte, SecretSize), make([]byte, SecretSize)
	rand.Read(sAB)
	rand.Read(sCB)
	b.dir.set(ha, ka.Public())
	b.dir.set(hc, kc.Public())
	b.dir.setSecret(ha, sAB)
	b.dir.setSecret(hc, sCB)
	echoOn(t, b, 80)

	lpc := newLoopPC(t, ha) // b sees its datagrams as A's
	connect(lpc, b.pc)
	tr := &quic.Transport{Conn: newPacketConn(lpc)}
	defer tr.Close()
	var certs certCache
	bc, err := certs.get(b.hit, kb.Public())
	if err != nil {
		t.Fatal(err)
	}
	dial := func(claim wire.HIT, secret []byte) (tls.ConnectionState, error) {
		session, err := clientSession(claim, b.hit, secret, bc, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		conf := &tls.Config{
			MinVersion:         tls.VersionTLS13,
			CurvePreferences:   clientCurves,
			RootCAs:            bc.pool,
			ServerName:         b.hit.String(),
			NextProtos:         []string{alpn},
			ClientSessionCache: &pskCache{session: session},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c, err := tr.Dial(ctx, b.pc.self, conf, (&Config{}).quicConfig())
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer c.CloseWithError(0, "")
		// The client's handshake may complete before the server has
		// judged it: wait for the server's verdict.
		st, err := c.OpenStreamSync(ctx)
		if err != nil {
			return c.ConnectionState().TLS, err
		}
		st.Write([]byte{headerVersion, 0, 80, 0xC0, 0})
		_, err = io.ReadFull(st, make([]byte, 1))
		return c.ConnectionState().TLS, err
	}
	// The harness works: A's own PSK resumes.
	cs, err := dial(ha, sAB)
	if err != nil || !cs.DidResume {
		t.Fatalf("A with its own PSK: resumed %v, %v", cs.DidResume, err)
	}
	for _, secret := range [][]byte{sAB, sCB} {
		cs, err := dial(hc, secret)
		// B went on to the certificate handshake, and A has no
		// certificate of C's: certificate_required (alert 116).
		var te *quic.TransportError
		if !errors.As(err, &te) || te.ErrorCode != 0x100+116 || cs.DidResume {
			t.Errorf("A claiming C: resumed %v, %v; want certificate_required", cs.DidResume, err)
		}
	}
}

// A new association (new secrets on both ends) gives new connections its
// PSK; nothing of the old one resumes. With only one end renewed, the
// hosts disagree and fall back to certificates.
func TestPSKNewAssociation(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	echoOn(t, b, 80)
	renew := func(nodes ...*node) {
		s := make([]byte, SecretSize)
		rand.Read(s)
		for _, n := range nodes {
			peer := a.hit
			if n == a {
				peer = b.hit
			}
			n.dir.setSecret(peer, s)
		}
	}
	for i, tc := range []struct {
		renew  []*node
		resume bool
	}{
		{nil, true},
		{[]*node{a, b}, true},
		{[]*node{b}, false},
	} {
		renew(tc.renew...)
		if err := roundTrip(t, a.m, b.hit, 80, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if cs, ss := tlsStates(t, a, b); cs.DidResume != tc.resume || ss.DidResume != tc.resume {
			t.Errorf("connection %d: DidResume %v/%v, want %v", i, cs.DidResume, ss.DidResume, tc.resume)
		}
		dropConns(t, a, b)
	}
}

// TestPSKSessionCertificatesPinned: the sessions built on a first contact
// find their certificates parsed, even after a garbage collection, at
// both ends (pinSession). Without the pins crypto/tls forgets them once
// the last session holding them is collected, and parses them again: some
// 90 allocations more for the client's two, 40 more for the placeholder.
func TestPSKSessionCertificatesPinned(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	secret := make([]byte, SecretSize)
	certs, err := a.m.certs.get(b.hit, kb.Public())
	if err != nil {
		t.Fatal(err)
	}
	ph, err := b.m.placeholder()
	if err != nil {
		t.Fatal(err)
	}
	// mallocsAfterGC is the fewest allocations f made, of five calls
	// each after a collection.
	mallocsAfterGC := func(f func()) uint64 {
		least := uint64(math.MaxUint64)
		for range 5 {
			runtime.GC()
			runtime.GC() // and the cleanups the first one queued
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			f()
			runtime.ReadMemStats(&m1)
			least = min(least, m1.Mallocs-m0.Mallocs)
		}
		return least
	}
	client := mallocsAfterGC(func() {
		if _, err := clientSession(a.m.local, b.hit, secret, certs, time.Now()); err != nil {
			t.Fatal(err)
		}
	})
	server := mallocsAfterGC(func() {
		if _, err := tls.ParseSessionState(encodeSession(sessionServer, secret, time.Now(), ph.leaf, nil, earlyServerExtra)); err != nil {
			t.Fatal(err)
		}
	})
	// Pinned: 30 and 5 here; parsed again: 122 and 53.
	if client > 60 || server > 30 {
		t.Errorf("allocations of a session after GC: client %d, server %d; the certificates were parsed again", client, server)
	}
	runtime.KeepAlive(certs)
	runtime.KeepAlive(ph)
}
