package hipnet

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/mitm"
)

// Helpers of attack_test.go and flood_test.go: the man in the middle
// between real nodes (internal/mitm), HIP packet views of what it
// recorded, forged packets, and a stream that checks every octet while it
// is attacked.

// raceBuild reports whether the test binary was built with -race; the
// flood tests measure timing and skip themselves there.
func raceBuild() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// Third addresses: other loopback sources an attacker replays from
// (Linux accepts any 127/8 address on lo).
var (
	thirdAddr  = netip.MustParseAddr("127.0.0.2")
	fourthAddr = netip.MustParseAddr("127.0.0.3")
)

// newMITM puts a proxy in front of target's UDP socket.
func newMITM(t testing.TB, target *Node) *mitm.Proxy {
	t.Helper()
	p, err := mitm.New(target.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// newTunedNode starts a node as NewNode does, on loopback, but with
// handshake overrides that Config does not offer (EncryptHostID, short
// UAL and MSL, a fixed #K).
func newTunedNode(t testing.TB, cfg Config, hs handshake.Config) *Node {
	t.Helper()
	if cfg.Identity == nil {
		id, err := GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Identity = id
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	n, err := newNode(cfg, hs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// viaProxy is a Config whose only known locator for peer is the proxy.
func viaProxy(peer *Node, p *mitm.Proxy) Config {
	return Config{Peers: map[HIT][]netip.AddrPort{peer.HIT(): {p.Addr()}}}
}

// hipOf parses a UDP payload as a HIP control packet (RFC 5770 §5.1).
func hipOf(b []byte) (wire.Packet, bool) {
	p, err := wire.ParseUDPControl(b)
	return p, err == nil
}

// isHIP reports whether d is a HIP packet of type typ going dir.
func isHIP(d *mitm.Datagram, dir mitm.Direction, typ wire.PacketType) bool {
	t, ok := d.HIPType()
	return ok && d.Dir == dir && wire.PacketType(t) == typ
}

// hipRecorded returns the datagrams the proxy recorded going dir that are
// HIP packets of type typ (injected ones excluded).
func hipRecorded(p *mitm.Proxy, dir mitm.Direction, typ wire.PacketType) []mitm.Datagram {
	return p.Select(func(d *mitm.Datagram) bool { return !d.Injected && isHIP(d, dir, typ) })
}

// sentAfter returns what p forwarded going dir (not injected) after t for
// which keep is true.
func sentAfter(p *mitm.Proxy, dir mitm.Direction, t time.Time, keep func(*mitm.Datagram) bool) []mitm.Datagram {
	return p.Select(func(d *mitm.Datagram) bool {
		return !d.Injected && d.Dir == dir && d.Time.After(t) && keep(d)
	})
}

// receivedAfter returns what s received after t for which keep is true.
func receivedAfter(s *mitm.Socket, t time.Time, keep func(*mitm.Datagram) bool) []mitm.Datagram {
	var out []mitm.Datagram
	for _, d := range s.Received() {
		if d.Time.After(t) && keep(&d) {
			out = append(out, d)
		}
	}
	return out
}

func isESP(d *mitm.Datagram) bool { return d.Kind() == mitm.KindESP }

func isR2(d *mitm.Datagram) bool {
	t, ok := d.HIPType()
	return ok && wire.PacketType(t) == wire.R2
}

// notifyTypes returns the NOTIFICATION types of a NOTIFY.
func notifyTypes(pkt wire.Packet) []wire.NotifyType {
	var out []wire.NotifyType
	it := pkt.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		if q.Type() != wire.ParamNotification {
			continue
		}
		if n, err := wire.ParseNotification(q.Contents()); err == nil {
			out = append(out, wire.NotifyType(n.Type))
		}
	}
	return out
}

// answerForm describes an answer by what an observer can tell apart
// without keys: packet type, NOTIFICATION types, length.
func answerForm(b []byte) string {
	pkt, ok := hipOf(b)
	if !ok {
		return fmt.Sprintf("%v/%d octets", mitm.Classify(b), len(b))
	}
	if pkt.Type() == wire.NOTIFY {
		return fmt.Sprintf("NOTIFY%v/%d octets", notifyTypes(pkt), len(b))
	}
	return fmt.Sprintf("%v/%d octets", pkt.Type(), len(b))
}

// paramSpan is where a parameter lies in a UDP payload (marker included).
type paramSpan struct {
	typ        wire.ParamType
	start      int // first octet of the TLV
	contentEnd int // end of Type, Length and Contents; padding follows
	end        int // end of the TLV with its padding
}

// paramSpans lists the parameters of a HIP packet over UDP.
func paramSpans(b []byte) []paramSpan {
	pkt, ok := hipOf(b)
	if !ok {
		return nil
	}
	var out []paramSpan
	it := pkt.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		s := wire.NonESPMarkerLen + q.Offset()
		out = append(out, paramSpan{typ: q.Type(), start: s, contentEnd: s + 4 + len(q.Contents()), end: s + q.TotalLen()})
	}
	return out
}

func spanOf(spans []paramSpan, t wire.ParamType) (paramSpan, bool) {
	for _, s := range spans {
		if s.typ == t {
			return s, true
		}
	}
	return paramSpan{}, false
}

// flipParam returns a copy of the HIP packet b with octet i of parameter
// t's contents inverted: a forgery of that parameter.
func flipParam(t testing.TB, b []byte, pt wire.ParamType, i int) []byte {
	t.Helper()
	s, ok := spanOf(paramSpans(b), pt)
	if !ok || s.start+4+i >= s.contentEnd {
		t.Fatalf("no octet %d in %v of % x", i, pt, b[:min(len(b), 48)])
	}
	c := append([]byte(nil), b...)
	c[s.start+4+i] ^= 0xff
	return c
}

// buildHIP builds a HIP packet over UDP from parameters (in ascending type
// order), as an attacker without keys can.
func buildHIP(t testing.TB, typ wire.PacketType, sender, receiver wire.HIT, params ...wire.Encoder) []byte {
	t.Helper()
	b := wire.NewBuilder(nil, typ, sender, receiver)
	for _, p := range params {
		b.Add(p)
	}
	raw, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return wire.AppendUDPControl(nil, raw)
}

// rawParam is a parameter copied from a recorded packet.
type rawParam struct{ p wire.Param }

func (r rawParam) ParamType() wire.ParamType { return r.p.Type() }
func (r rawParam) Len() int                  { return len(r.p.Contents()) }
func (r rawParam) Encode(b []byte)           { copy(b, r.p.Contents()) }

func randBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// peerOf returns n's association record for h.
func peerOf(n *Node, h HIT) (PeerInfo, bool) {
	for _, p := range n.Peers() {
		if p.HIT == h {
			return p, true
		}
	}
	return PeerInfo{}, false
}

// holdsKeysWith reports whether n has an association with h in a state
// with keys in use by the data path (R2-SENT or ESTABLISHED).
func holdsKeysWith(n *Node, h HIT) (PeerInfo, bool) {
	p, ok := peerOf(n, h)
	return p, ok && (p.State == "ESTABLISHED" || p.State == "R2-SENT")
}

// waitUntil polls cond every 10 ms for up to d.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settle gives the nodes time to handle what was just injected on
// loopback (and to answer it).
func settle() { time.Sleep(300 * time.Millisecond) }

// attackRig is a responder B, a proxy in front of it, and the identity of
// an initiator A whose successive nodes reach B through the proxy (so that
// A can close one association and open a newer one under the same HIT).
type attackRig struct {
	t      *testing.T
	b      *Node
	proxy  *mitm.Proxy
	id     *Identity
	refuse atomic.Bool // B's Authorize refuses A while set
}

// echoPort is where B echoes streams.
const echoPort = 7

func newAttackRig(t *testing.T) *attackRig { return newAttackRigWith(t, nil) }

// newAttackRigWith is newAttackRig with B's handshake overrides (nil:
// none, B is a plain Node).
func newAttackRigWith(t *testing.T, hs *handshake.Config) *attackRig {
	t.Helper()
	r := &attackRig{t: t}
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	r.id = id
	a := id.HIT()
	cfg := Config{Authorize: func(h HIT) bool { return h != a || !r.refuse.Load() }}
	if hs != nil {
		r.b = newTunedNode(t, cfg, *hs)
	} else {
		r.b = newTestNode(t, cfg)
	}
	echoServer(t, r.b, echoPort)
	r.proxy = newMITM(t, r.b)
	return r
}

// initiator starts a node with A's identity that knows B only at the
// proxy, and makes it the proxy's client.
func (r *attackRig) initiator() *Node {
	cfg := viaProxy(r.b, r.proxy)
	cfg.Identity = r.id
	a := newTestNode(r.t, cfg)
	r.proxy.SetClient(a.LocalAddr())
	return a
}

// liveEcho is a stream to an echo server that writes a known pattern at
// a steady pace and checks every octet that comes back, until finish.
type liveEcho struct {
	c       net.Conn
	pattern []byte
	stop    chan struct{}
	wdone   chan error
	rdone   chan error
	written atomic.Int64
	checked atomic.Int64

	mu   sync.Mutex
	rerr error // the reader's end, once it ended
}

// Pace of liveEcho: about 750 kB/s, enough to notice a stall at once,
// little enough to leave the CPU to the attack.
const (
	liveChunk = 1500
	livePace  = 2 * time.Millisecond
)

func startLiveEcho(t testing.TB, client, server *Node, port int, seed uint64) *liveEcho {
	t.Helper()
	c, err := client.DialContext(ctxT(t, 15*time.Second), "tcp", addrOf(server, port))
	if err != nil {
		t.Fatalf("live stream: %v", err)
	}
	l := &liveEcho{c: c, pattern: randomBytes(seed, 1<<16+7), stop: make(chan struct{}),
		wdone: make(chan error, 1), rdone: make(chan error, 1)}
	t.Cleanup(func() { c.Close() })
	go l.write()
	go l.read()
	return l
}

func (l *liveEcho) write() {
	tick := time.NewTicker(livePace)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			l.wdone <- l.c.(interface{ CloseWrite() error }).CloseWrite()
			return
		case <-tick.C:
		}
		pos := l.written.Load()
		chunk := make([]byte, liveChunk)
		for i := range chunk {
			chunk[i] = l.pattern[(pos+int64(i))%int64(len(l.pattern))]
		}
		l.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		n, err := l.c.Write(chunk)
		l.written.Add(int64(n))
		if err != nil {
			l.wdone <- fmt.Errorf("write after %d octets: %w", l.written.Load(), err)
			return
		}
	}
}

func (l *liveEcho) read() {
	buf := make([]byte, 8192)
	for {
		n, err := l.c.Read(buf)
		pos := l.checked.Load()
		for i := 0; i < n; i++ {
			if want := l.pattern[(pos+int64(i))%int64(len(l.pattern))]; buf[i] != want {
				l.end(fmt.Errorf("octet %d of the stream is %#02x, want %#02x", pos+int64(i), buf[i], want))
				return
			}
		}
		l.checked.Add(int64(n))
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			} else {
				err = fmt.Errorf("read after %d octets: %w", l.checked.Load(), err)
			}
			l.end(err)
			return
		}
	}
}

func (l *liveEcho) end(err error) {
	l.mu.Lock()
	l.rerr = err
	l.mu.Unlock()
	l.rdone <- err
}

// failed returns the reader's error if it stopped early.
func (l *liveEcho) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rerr
}

// progress is how many octets came back intact.
func (l *liveEcho) progress() int64 { return l.checked.Load() }

// advance waits until n more octets came back intact.
func (l *liveEcho) advance(n int64, within time.Duration) error {
	target := l.progress() + n
	if !waitUntil(within, func() bool { return l.progress() >= target || l.failed() != nil }) {
		return fmt.Errorf("stream stalled: %d octets back, want %d within %v", l.progress(), target, within)
	}
	return l.failed()
}

// finish stops writing and waits for the rest of the echo: every octet
// written must have come back, each equal.
func (l *liveEcho) finish(within time.Duration) error {
	close(l.stop)
	l.c.SetReadDeadline(time.Now().Add(within))
	if err := <-l.wdone; err != nil {
		return err
	}
	if err := <-l.rdone; err != nil {
		return err
	}
	if w, c := l.written.Load(), l.checked.Load(); w != c {
		return fmt.Errorf("wrote %d octets, %d came back", w, c)
	}
	return nil
}
