package handshake

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// The test harness: hosts with an Endpoint and their associations, a link
// that carries packets between them (with an optional filter that drops or
// rewrites), and a fake clock.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var keyCache = map[hostid.KeyType][]*hostid.PrivateKey{}

// testKey returns the n-th cached key of type kt (generation is slow for RSA).
func testKey(t testing.TB, kt hostid.KeyType, n int) *hostid.PrivateKey {
	t.Helper()
	for len(keyCache[kt]) <= n {
		k, err := hostid.Generate(kt, nil)
		if err != nil {
			t.Fatal(err)
		}
		keyCache[kt] = append(keyCache[kt], k)
	}
	return keyCache[kt][n]
}

type host struct {
	t      testing.TB
	name   string
	e      *Endpoint
	assoc  map[wire.HIT]*Association
	events []Event
	errs   []error
	repeat bool // the last delivered packet's Result.Repeat
}

func newHost(t testing.TB, name string, cfg Config) *host {
	t.Helper()
	e, err := NewEndpoint(cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	return &host{t: t, name: name, e: e, assoc: map[wire.HIT]*Association{}}
}

func (h *host) a(peer *host) *Association { return h.assoc[peer.e.HIT()] }

// lookup finds the association for a packet's sender, including an
// opportunistic one still keyed by the zero HIT.
func (h *host) lookup(sender wire.HIT) *Association {
	if a := h.assoc[sender]; a != nil {
		return a
	}
	if a := h.assoc[wire.HIT{}]; a != nil && a.opportunistic() {
		return a
	}
	return nil
}

// collect drains an association's outputs, re-keying the map when an
// opportunistic association learnt its peer.
func (h *host) collect(a *Association) [][]byte {
	if a == nil {
		return nil
	}
	if a.PeerHIT() != (wire.HIT{}) && h.assoc[wire.HIT{}] == a {
		delete(h.assoc, wire.HIT{})
	}
	h.assoc[a.PeerHIT()] = a
	evs := a.Events()
	h.events = append(h.events, evs...)
	for _, ev := range evs {
		if ev.Kind == EventPuzzle {
			// What the stack does on another goroutine, done at once.
			j, err := ev.Puzzle.Solve(nil)
			if err := a.PuzzleSolved(ev.Puzzle.Deadline, ev.Puzzle, j, err); err != nil {
				h.t.Fatal(err)
			}
			return append(a.Outgoing(), h.collect(a)...)
		}
	}
	return a.Outgoing()
}

func (h *host) deliver(now time.Time, pkt []byte) [][]byte {
	p, err := wire.ParsePacket(pkt)
	var a *Association
	if err == nil {
		a = h.lookup(p.SenderHIT())
	}
	res, err := h.e.Handle(now, pkt, a)
	h.errs = append(h.errs, err)
	h.repeat = res.Repeat
	out := h.collect(res.Assoc)
	if res.Reply != nil {
		out = append([][]byte{res.Reply}, out...)
	}
	return out
}

func (h *host) initiate(now time.Time, peer wire.HIT) [][]byte {
	a := h.e.Initiate(now, peer)
	h.assoc[peer] = a
	return h.collect(a)
}

func (h *host) lastErr() error {
	if len(h.errs) == 0 {
		return nil
	}
	return h.errs[len(h.errs)-1]
}

func (h *host) eventsOf(k EventKind) []Event {
	var out []Event
	for _, e := range h.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// timeout runs the timers of every association due by now.
func (h *host) timeout(now time.Time) [][]byte {
	var out [][]byte
	for _, a := range h.assoc {
		if d := a.Deadline(); !d.IsZero() && !now.Before(d) {
			a.HandleTimeout(now)
		}
		out = append(out, h.collect(a)...)
	}
	return out
}

type packet struct {
	from, to *host
	b        []byte
}

// link carries packets; filter may drop (return nil) or rewrite them.
type link struct {
	queue  []packet
	filter func(p packet) []byte
	seen   []packet
}

func (l *link) send(from, to *host, pkts [][]byte) {
	for _, b := range pkts {
		l.queue = append(l.queue, packet{from, to, b})
	}
}

// run delivers until the link is quiet (bounded).
func (l *link) run(t testing.TB, now time.Time) {
	t.Helper()
	for n := 0; len(l.queue) > 0; n++ {
		if n > 1000 {
			t.Fatal("link did not go quiet")
		}
		p := l.queue[0]
		l.queue = l.queue[1:]
		l.seen = append(l.seen, p)
		if l.filter != nil {
			if p.b = l.filter(p); p.b == nil {
				continue
			}
		}
		l.send(p.to, p.from, p.to.deliver(now, p.b))
	}
}

func ptype(b []byte) wire.PacketType {
	p, err := wire.ParsePacket(b)
	if err != nil {
		return 0
	}
	return p.Type()
}

// defaultCfg is a fast configuration for tests.
func defaultCfg(k *hostid.PrivateKey) Config {
	return Config{Identity: k, PuzzleDifficulty: 1}
}

// bex runs a complete base exchange from a to b at t0 and returns the link.
func bex(t *testing.T, a, b *host) *link {
	t.Helper()
	l := &link{}
	l.send(a, b, a.initiate(t0, b.e.HIT()))
	l.run(t, t0)
	return l
}

// checkSAs asserts that each side's outbound SA is the other's inbound
// and that ESP actually carries data both ways with them.
func checkSAs(t *testing.T, aOut, aIn, bOut, bIn esp.Config) {
	t.Helper()
	if aOut.SPI != bIn.SPI || bOut.SPI != aIn.SPI || aOut.SPI == 0 || bOut.SPI == 0 {
		t.Fatalf("SPIs do not pair: a out %#x in %#x, b out %#x in %#x", aOut.SPI, aIn.SPI, bOut.SPI, bIn.SPI)
	}
	if !bytes.Equal(aOut.EncKey, bIn.EncKey) || !bytes.Equal(aOut.AuthKey, bIn.AuthKey) ||
		!bytes.Equal(bOut.EncKey, aIn.EncKey) || !bytes.Equal(bOut.AuthKey, aIn.AuthKey) {
		t.Fatal("ESP keys do not pair")
	}
	if bytes.Equal(aOut.EncKey, bOut.EncKey) && len(aOut.EncKey) > 0 {
		t.Fatal("both directions use the same encryption key")
	}
	for _, pair := range [][2]esp.Config{{aOut, bIn}, {bOut, aIn}} {
		o, err := esp.NewOutbound(pair[0])
		if err != nil {
			t.Fatal(err)
		}
		in, err := esp.NewInbound(pair[1])
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := o.Seal(nil, []byte("hello over ESP"), 17)
		if err != nil {
			t.Fatal(err)
		}
		pt, nh, err := in.Open(nil, sealed)
		if err != nil || nh != 17 || string(pt) != "hello over ESP" {
			t.Fatalf("ESP round trip: %q %d %v", pt, nh, err)
		}
	}
}

func mustErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
}
