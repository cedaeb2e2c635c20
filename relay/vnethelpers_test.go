package relay

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// An in-process network for the relay and NAT traversal tests, built
// from pion's vnet: a WAN router (1.0.0.0/8, only ever inside vnet) with
// public hosts on it and, behind it, one LAN router per NATed host, each
// with its own NAT behaviour. A vnet router delivers on a goroutine of its
// own; Stop ends it (vnetWorld's cleanup, after the stacks closed). Loss
// and reordering are a chunk filter on the WAN router whose decisions come
// from a seeded generator: every datagram crosses the WAN router exactly
// once.

// NAT behaviours (RFC 4787).
var (
	// natCone: endpoint-independent mapping, endpoint-independent
	// filtering ("full cone").
	natCone = vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointIndependent}
	// natPortRestricted: endpoint-independent mapping, address-and-port-
	// dependent filtering, the common home router.
	natPortRestricted = vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointAddrPortDependent}
	// natSymmetric: address-and-port-dependent mapping and filtering.
	natSymmetric = vnet.NATType{MappingBehavior: vnet.EndpointAddrPortDependent, FilteringBehavior: vnet.EndpointAddrPortDependent}
)

// vnetPort is the UDP port every node binds on its vnet address.
const vnetPort = 10500

// vnetBuild serialises the building of routers and hosts: vnet numbers
// their MAC addresses with an unsynchronised global counter.
var vnetBuild sync.Mutex

// vnetWorlds counts live vnetWorlds; the last to go checks that no vnet
// goroutine outlives it.
var vnetWorlds struct {
	sync.Mutex
	n int
}

// vnetWorld is one virtual network.
type vnetWorld struct {
	t    testing.TB
	logs logging.LoggerFactory
	wan  *vnet.Router
	imp  *impairment // nil: a perfect WAN
	// cuts: the test cuts paths (drop), so an UPDATE in flight at a cut
	// must outlast the fallback to the relay (handshake).
	cuts    bool
	lans    int
	pubs    int
	started bool
	ips     map[*vnet.Net]string
	stacks  []*overlay.Stack
	relays  map[*overlay.Stack]bool // closed last
	closers []func()
}

// impair configures loss and reordering on the WAN: each datagram is lost
// with probability loss, or else held back by 1..maxDelay with
// probability reorder (it then arrives after datagrams sent later).
type impair struct {
	seed          uint64
	loss, reorder float64
	maxDelay      time.Duration
}

func newVNet(t testing.TB, imp *impair) *vnetWorld {
	t.Helper()
	lf := logging.NewDefaultLoggerFactory()
	if os.Getenv("HIPNET_TEST_LOG") != "" {
		lf.DefaultLogLevel = logging.LogLevelWarn // NAT drops ("has no permission")
	}
	vnetBuild.Lock()
	wan, err := vnet.NewRouter(&vnet.RouterConfig{Name: "wan", CIDR: "1.0.0.0/8", LoggerFactory: lf})
	vnetBuild.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	w := &vnetWorld{t: t, logs: lf, wan: wan, ips: map[*vnet.Net]string{}}
	if imp != nil {
		w.imp = newImpairment(t, wan, *imp)
		wan.AddChunkFilter(w.imp.filter)
	}
	vnetWorlds.Lock()
	vnetWorlds.n++
	vnetWorlds.Unlock()
	// Registered before any stack: runs after their Close.
	t.Cleanup(w.stop)
	return w
}

// drop makes the WAN drop the datagrams f picks; f runs on the router's
// goroutine.
func (w *vnetWorld) drop(f func(c vnet.Chunk) bool) {
	w.wan.AddChunkFilter(func(c vnet.Chunk) bool { return !f(c) })
}

// delay makes the WAN hold back the datagrams f picks by d (f runs on
// the router's goroutine): such a datagram is dropped and a copy of it
// re-enters the router d later, through a vnet.DuplicationFilter.
func (w *vnetWorld) delay(f func(c vnet.Chunk) bool, d time.Duration) {
	w.t.Helper()
	dup, err := vnet.NewDuplicationFilter(w.wan, vnet.WithDuplicationProbability(1), vnet.WithDuplicationExtraDelay(d, d))
	if err != nil {
		w.t.Fatal(err)
	}
	w.closers = append(w.closers, func() { _ = dup.Close() })
	again := dup.ChunkFilter()
	var mu sync.Mutex
	held := map[uint64]int{}
	w.wan.AddChunkFilter(func(c vnet.Chunk) bool {
		k := chunkKey(c)
		mu.Lock()
		defer mu.Unlock()
		if held[k] > 0 {
			held[k]--
			return true
		}
		if !f(c) {
			return true
		}
		held[k]++
		again(c)
		return false
	})
}

// natIP is the public address of the NAT of the k-th behindNAT host.
func natIP(k int) string { return fmt.Sprintf("1.%d.0.1", k) }

func chunkIPs(c vnet.Chunk) (src, dst string) {
	s, _, _ := net.SplitHostPort(c.SourceAddr().String())
	d, _, _ := net.SplitHostPort(c.DestinationAddr().String())
	return s, d
}

// isSTUNRequest reports whether c carries a STUN Binding Request.
func isSTUNRequest(c vnet.Chunk) bool {
	b := c.UserData()
	return len(b) >= 20 && b[0] == 0 && b[1] == 1 && binary.BigEndian.Uint32(b[4:]) == 0x2112A442
}

// public adds a host on the WAN.
func (w *vnetWorld) public() *vnet.Net {
	w.t.Helper()
	w.pubs++
	ip := fmt.Sprintf("1.0.0.%d", 10+w.pubs)
	vnetBuild.Lock()
	n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
	vnetBuild.Unlock()
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.wan.AddNet(n); err != nil {
		w.t.Fatal(err)
	}
	w.ips[n] = ip
	return n
}

// behindNAT adds a host alone on a LAN (10.k.0.0/24, a subnet of its own,
// so that no host candidate of another LAN routes) behind a NAT of type nt
// whose public address is 1.k.0.1.
func (w *vnetWorld) behindNAT(nt vnet.NATType) *vnet.Net {
	w.t.Helper()
	if w.started {
		w.t.Fatal("vnet: topology changed after start")
	}
	w.lans++
	k := w.lans
	nt.MappingLifeTime = time.Minute
	vnetBuild.Lock()
	defer vnetBuild.Unlock()
	lan, err := vnet.NewRouter(&vnet.RouterConfig{
		Name: fmt.Sprintf("nat%d", k), CIDR: fmt.Sprintf("10.%d.0.0/24", k),
		StaticIPs: []string{natIP(k)}, NATType: &nt, LoggerFactory: w.logs,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.wan.AddRouter(lan); err != nil {
		w.t.Fatal(err)
	}
	ip := fmt.Sprintf("10.%d.0.2", k)
	n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := lan.AddNet(n); err != nil {
		w.t.Fatal(err)
	}
	w.ips[n] = ip
	return n
}

// start starts the routers (the WAN starts its children); the topology is
// fixed from here on.
func (w *vnetWorld) start() {
	w.t.Helper()
	if err := w.wan.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.started = true
}

// conn opens the node socket of host n: its static address (not 0.0.0.0,
// so that the stack's ICE host candidate is that address), port vnetPort.
func (w *vnetWorld) conn(n *vnet.Net) net.PacketConn {
	w.t.Helper()
	pc, err := n.ListenPacket("udp4", net.JoinHostPort(w.ips[n], strconv.Itoa(vnetPort)))
	if err != nil {
		w.t.Fatal(err)
	}
	return pc
}

func (w *vnetWorld) stop() {
	if w.started {
		if err := w.wan.Stop(); err != nil {
			w.t.Errorf("vnet stop: %v", err)
		}
	}
	if w.imp != nil {
		w.imp.close()
	}
	for _, f := range w.closers {
		f()
	}
	vnetWorlds.Lock()
	defer vnetWorlds.Unlock()
	if vnetWorlds.n--; vnetWorlds.n > 0 {
		return
	}
	// The last world: no router or filter goroutine may remain.
	var left string
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if left = vnetGoroutines(); left == "" {
			return
		}
	}
	w.t.Errorf("vnet goroutines left after stop:\n%s", left)
}

// vnetGoroutines returns the stacks of the goroutines running vnet code.
func vnetGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "pion/transport/v5/vnet.") && !strings.Contains(g, "vnetGoroutines") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// impairment is the WAN's chunk filter. A chunk chosen for reordering is
// dropped and a copy re-enters the router later through a
// vnet.DuplicationFilter that duplicates every chunk it is handed; the
// copy is recognised by its content and let through once.
type impairment struct {
	cfg impair
	dup *vnet.DuplicationFilter
	add vnet.ChunkFilter

	mu      sync.Mutex
	rng     *rand.Rand
	held    map[uint64]int // delayed copies on their way back, by chunkKey
	passed  int
	lost    int
	delayed int
}

func newImpairment(t testing.TB, wan *vnet.Router, cfg impair) *impairment {
	t.Helper()
	dup, err := vnet.NewDuplicationFilter(wan,
		vnet.WithDuplicationProbability(1),
		vnet.WithDuplicationExtraDelay(time.Millisecond, cfg.maxDelay),
		vnet.WithDuplicationSeed(int64(cfg.seed)))
	if err != nil {
		t.Fatal(err)
	}
	return &impairment{
		cfg: cfg, dup: dup, add: dup.ChunkFilter(),
		rng:  rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15)),
		held: map[uint64]int{},
	}
}

func chunkKey(c vnet.Chunk) uint64 {
	h := fnv.New64a()
	h.Write([]byte(c.SourceAddr().String()))
	h.Write([]byte{0})
	h.Write([]byte(c.DestinationAddr().String()))
	h.Write([]byte{0})
	h.Write(c.UserData())
	return h.Sum64()
}

// filter runs on the WAN router's goroutine for every chunk it routes.
func (m *impairment) filter(c vnet.Chunk) bool {
	k := chunkKey(c)
	m.mu.Lock()
	if m.held[k] > 0 { // a delayed copy back
		if m.held[k]--; m.held[k] == 0 {
			delete(m.held, k)
		}
		m.passed++
		m.mu.Unlock()
		return true
	}
	if m.rng.Float64() < m.cfg.loss {
		m.lost++
		m.mu.Unlock()
		return false
	}
	if m.rng.Float64() < m.cfg.reorder {
		m.held[k]++
		m.delayed++
		m.mu.Unlock()
		m.add(c) // schedules the copy
		return false
	}
	m.passed++
	m.mu.Unlock()
	return true
}

func (m *impairment) counts() (passed, lost, delayed int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.passed, m.lost, m.delayed
}

func (m *impairment) close() { _ = m.dup.Close() }

// pathEvents records a stack's path changes ("path" and "ice failed"
// logs) and forwards everything to testLog's logger when it is on.
type pathEvents struct {
	mu     sync.Mutex
	events []string
}

func (e *pathEvents) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.events...)
}

func (e *pathEvents) has(prefix string) bool {
	for _, ev := range e.list() {
		if strings.HasPrefix(ev, prefix) {
			return true
		}
	}
	return false
}

type eventHandler struct {
	ev   *pathEvents
	next slog.Handler // nil: HIPNET_TEST_LOG is off
}

func (h eventHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || (h.next != nil && h.next.Enabled(ctx, l))
}

func (h eventHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "path" || strings.HasPrefix(r.Message, "ice failed") {
		s := r.Message
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "path" || a.Key == "reason" {
				s += " " + a.Value.String()
			}
			return true
		})
		h.ev.mu.Lock()
		h.ev.events = append(h.ev.events, s)
		h.ev.mu.Unlock()
	}
	if h.next != nil && h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h eventHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if h.next != nil {
		h.next = h.next.WithAttrs(as)
	}
	return h
}

func (h eventHandler) WithGroup(g string) slog.Handler {
	if h.next != nil {
		h.next = h.next.WithGroup(g)
	}
	return h
}

// track makes s one of the stacks closed together at the end of the
// test. Closed one after the other, each would wait closeWait for the
// CLOSE_ACKs of peers gone already: the nodes close first, all at once,
// while the relay still forwards their CLOSEs and answers its own; then
// the relays, which have no association left.
func (w *vnetWorld) track(s *overlay.Stack) {
	w.stacks = append(w.stacks, s)
	w.t.Cleanup(w.closeAll) // the last registered runs first
}

func (w *vnetWorld) closeAll() {
	for _, relays := range []bool{false, true} {
		var wg sync.WaitGroup
		for _, s := range w.stacks {
			if w.relays[s] != relays {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.Close()
			}()
		}
		wg.Wait()
	}
}

// vnode is a stack on the virtual network with its path log.
type vnode struct {
	*overlay.Stack
	name string
	ev   *pathEvents
}

func (w *vnetWorld) logger(name string) (*slog.Logger, *pathEvents) {
	ev := &pathEvents{}
	var next slog.Handler
	if l := testLog(name); l != nil {
		next = l.Handler()
	}
	return slog.New(eventHandler{ev: ev, next: next}), ev
}

// lossyHandshake gives the handshake more retransmissions on an impaired
// WAN: fastHandshake's four tries in 750 ms are thin when a packet is
// lost with 10% probability on a relayed hop pair and the race detector
// slows the crypto.
func (w *vnetWorld) lossyHandshake(c *overlay.Config) { c.Handshake = w.handshake() }

// handshake is fastHandshake, with more retries on a lossy WAN, and
// where the test cuts a path: fastHandshake gives an UPDATE up after
// 750 ms (RFC 7401 §6.11 step 4: the association is closed), before the
// locator Set's fallback to the relay (about 1.65 s) could carry its
// retransmission, so an UPDATE that happened to be in flight at the cut
// (more often so under the race detector, on a loaded machine) ended
// the association the test wants to see move.
func (w *vnetWorld) handshake() handshake.Config {
	h := fastHandshake()
	if w.imp != nil || w.cuts {
		h.Retries = 6 // 50 ms doubling: 6.35 s
	}
	return h
}

// relay starts a relay with identity 9 on host n.
func (w *vnetWorld) relay(n *vnet.Net) *Server {
	w.t.Helper()
	log, _ := w.logger("relay")
	s := testRelay(w.t, func(c *Config) {
		c.Logger = log
		c.PacketConn = w.conn(n)
		c.Handshake = w.handshake()
	})
	if w.relays == nil {
		w.relays = map[*overlay.Stack]bool{}
	}
	w.relays[s.Stack()] = true
	w.track(s.Stack())
	return s
}

// node starts a stack with identity id on host n, registered with relay
// r when r is not nil.
func (w *vnetWorld) node(id int, n *vnet.Net, r *Server) *vnode {
	w.t.Helper()
	name := fmt.Sprintf("node%d", id)
	log, ev := w.logger(name)
	s := newTestStack(w.t, id, func(c *overlay.Config) {
		if r != nil {
			c.Relays = []overlay.RelayAddr{{HIT: r.HIT(), Addr: r.Addr()}}
		}
		c.KeepaliveInterval = 200 * time.Millisecond
		c.Logger = log
		c.PacketConn = w.conn(n)
		w.lossyHandshake(c)
	})
	w.track(s)
	return &vnode{Stack: s, name: name, ev: ev}
}

// waitReady waits until relay r registered the nodes and each node
// learnt its reflexive address from r's STUN service. The relay grants a
// registration, and so forwards dials to the node, before the node asks
// for that address (registerRelay: Register, then refreshSrflx): a node
// dialled in between sends no server-reflexive candidate, and behind an
// address-and-port-dependent filter ICE then cannot find the direct path.
// That window is not what these tests are about.
func waitReady(t *testing.T, r *Server, nodes ...*vnode) {
	t.Helper()
	hs := make([]wire.HIT, len(nodes))
	for i, n := range nodes {
		hs[i] = n.HIT()
	}
	waitRegistered(t, r, hs...)
	waitFor(t, 5*time.Second, "reflexive addresses", func() bool {
		for _, n := range nodes {
			if len(reflexive(n.Stack)) == 0 {
				return false
			}
		}
		return true
	})
}

// echo answers every datagram on port 7 of s with the same octets, after
// checking that they are a message of msg; bad counts those that are not.
func echo(t testing.TB, s *overlay.Stack) *atomic.Int64 {
	t.Helper()
	c, err := s.ListenInner(7)
	if err != nil {
		t.Fatal(err)
	}
	bad := new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, overlay.MaxPayload)
		for {
			n, from, err := c.ReadFromAddr(buf)
			if err != nil {
				return // closed
			}
			if !validMsg(buf[:n]) {
				bad.Add(1)
				continue
			}
			_, _ = c.WriteTo(buf[:n], &from)
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return bad
}

// msgSizes are the sizes of the test messages, in turn.
var msgSizes = []int{4, 5, 60, 333, 1000, 1200}

// msg is test message i: its index and a pattern that depends on it.
func msg(i int) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(i))
	return append(b, pattern(i, msgSizes[i%len(msgSizes)]-4)...)
}

func validMsg(b []byte) bool {
	return len(b) >= 4 && bytes.Equal(b, msg(int(binary.BigEndian.Uint32(b))))
}

// transfer sends n messages from s to the echo on peer's port 7 and checks
// that each comes back byte for byte: both directions of the association
// carry every octet. With lossy false, nothing may be lost: the messages go
// out in one burst and all must come back (in any order, each once). With
// lossy true, each message is sent until its echo returns (at most 30
// times); it returns how many were sent again.
func transfer(t testing.TB, s *overlay.Stack, peer wire.HIT, first, n int, lossy bool) (resent int) {
	t.Helper()
	c := listen(t, s, 0)
	defer c.Close()
	to := &overlay.Addr{HIT: peer, Port: 7}
	buf := make([]byte, overlay.MaxPayload)
	if !lossy {
		for i := first; i < first+n; i++ {
			if _, err := c.WriteTo(msg(i), to); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
		seen := map[int]bool{}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for len(seen) < n {
			k, from, err := c.ReadFromAddr(buf)
			if err != nil {
				t.Fatalf("%d of %d echoes back: %v", len(seen), n, err)
			}
			if from.HIT != peer || !validMsg(buf[:k]) {
				t.Fatalf("echo from %v: %d octets not a test message", from, k)
			}
			i := int(binary.BigEndian.Uint32(buf))
			if i < first || i >= first+n || seen[i] {
				t.Fatalf("echo of message %d: unexpected or twice", i)
			}
			seen[i] = true
		}
		return 0
	}
	for i := first; i < first+n; i++ {
		want := msg(i)
		ok := false
		for try := 0; try < 30 && !ok; try++ {
			if try > 0 {
				resent++
			}
			if _, err := c.WriteTo(want, to); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			for {
				k, from, err := c.ReadFromAddr(buf)
				if err != nil {
					if !isTimeout(err) {
						t.Fatal(err)
					}
					break
				}
				if from.HIT != peer || !validMsg(buf[:k]) {
					t.Fatalf("echo from %v: %d octets not a test message", from, k)
				}
				if bytes.Equal(buf[:k], want) {
					ok = true
					break
				}
				// An echo of an earlier message sent twice: skip.
			}
		}
		if !ok {
			t.Fatalf("message %d: no echo after 30 tries", i)
		}
	}
	return resent
}

// paths returns the path each of a and b uses to the other.
func paths(a, b *vnode) (string, string) {
	pa, _ := peerInfo(a.Stack, b.HIT())
	pb, _ := peerInfo(b.Stack, a.HIT())
	return pa.Path, pb.Path
}

// echoAndDial starts the echo on both nodes and has a dial b by HIT.
func echoAndDial(t testing.TB, a, b *vnode) {
	t.Helper()
	echo(t, a.Stack)
	echo(t, b.Stack)
	connectVia(t, a, b)
}

func connectVia(t testing.TB, from, to *vnode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := from.Connect(ctx, to.HIT()); err != nil {
		t.Fatalf("%s dials %s by HIT: %v", from.name, to.name, err)
	}
}
