package handshake

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// FuzzHandle feeds arbitrary packets to an Endpoint whose association
// with the sender is ESTABLISHED. Nothing may panic, and a packet that is
// rejected must leave the association exactly as it was: same state, same
// SPIs, nothing sent but stateless answers (R1s). The hosts use the fixed
// identities in testdata so that the committed seeds (real packets of a
// base exchange between them) reach past the HIT checks.

var writeSeeds = flag.Bool("write-seeds", false, "rewrite testdata/fuzz/FuzzHandle from a live exchange")

var fuzzKeys struct {
	once sync.Once
	a, b *hostid.PrivateKey
	err  error
}

func fixedKeys(t testing.TB) (*hostid.PrivateKey, *hostid.PrivateKey) {
	fuzzKeys.once.Do(func() {
		fuzzKeys.a, fuzzKeys.err = hostid.ParsePEM(mustRead(t, "testdata/fuzz-a.pem"))
		if fuzzKeys.err == nil {
			fuzzKeys.b, fuzzKeys.err = hostid.ParsePEM(mustRead(t, "testdata/fuzz-b.pem"))
		}
	})
	if fuzzKeys.err != nil {
		t.Fatal(fuzzKeys.err)
	}
	return fuzzKeys.a, fuzzKeys.b
}

func mustRead(t testing.TB, name string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixedHosts are two hosts with the fixed identities, #K 1.
func fixedHosts(t testing.TB) (a, b *host) {
	ka, kb := fixedKeys(t)
	return newHost(t, "a", Config{Identity: ka, PuzzleDifficulty: 1}), newHost(t, "b", Config{Identity: kb, PuzzleDifficulty: 1})
}

// fixedPair runs a base exchange between the fixed identities, then a
// rekey and a CLOSE, and returns every packet seen.
func fixedPair(t testing.TB) (a, b *host, seen []packet) {
	a, b = fixedHosts(t)
	l := &link{}
	l.send(a, b, a.initiate(t0, b.e.HIT()))
	l.run(t, t0)
	b.a(a).DataReceived(t0)
	return a, b, l.seen
}

func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to regenerate the FuzzHandle corpus")
	}
	a, b, seen := fixedPair(t)
	if err := a.a(b).Rekey(t0, true); err != nil {
		t.Fatal(err)
	}
	l := &link{}
	l.send(a, b, a.collect(a.a(b)))
	l.run(t, t0)
	a.a(b).Close(t0)
	l.send(a, b, a.collect(a.a(b)))
	l.run(t, t0)
	seen = append(seen, l.seen...)
	dir := filepath.Join("testdata", "fuzz", "FuzzHandle")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, p := range seen {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", p.b)
		name := filepath.Join(dir, fmt.Sprintf("%02d-%v", i, ptype(p.b)))
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzHandle(f *testing.F) {
	f.Fuzz(func(t *testing.T, pkt []byte) {
		a, b, _ := fixedPair(t)
		handleRejected(t, b, b.a(a), pkt, t0.Add(time.Second))
	})
}

// handleRejected hands pkt to h's association x: if it is rejected, it
// must leave x as it was, make it send nothing, create no association,
// and be answered with nothing but a NOTIFY. (A valid packet may
// legitimately change state.)
func handleRejected(t *testing.T, h *host, x *Association, pkt []byte, now time.Time) {
	t.Helper()
	before := x.Info()
	res, err := h.e.Handle(now, pkt, x)
	if err == nil {
		return
	}
	if res.Assoc != nil && res.Assoc != x {
		t.Fatal("a rejected packet created an association")
	}
	if x.Info() != before {
		t.Fatalf("rejected packet (%v) changed the association: %+v -> %+v", err, before, x.Info())
	}
	if out := x.Outgoing(); len(out) != 0 {
		t.Fatalf("rejected packet (%v) made the association send %v", err, ptype(out[0]))
	}
	if res.Reply != nil && ptype(res.Reply) != wire.NOTIFY {
		t.Fatalf("rejected packet answered with %v", ptype(res.Reply))
	}
}
