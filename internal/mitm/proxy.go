package mitm

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Bounds of what a Proxy or Socket keeps: further datagrams are still
// forwarded and counted but not recorded (Counts.Unrecorded), and further
// Holds are dropped (Counts.Dropped).
const (
	MaxRecorded = 1 << 16
	MaxHeld     = 1 << 10

	// MaxOldMappings bounds the earlier target-facing sockets a Proxy
	// keeps open after Rebind (see SetOldMapping): beyond it, the oldest
	// is closed.
	MaxOldMappings = 16
)

// maxDatagram is the largest UDP payload read.
const maxDatagram = 1 << 16

// Direction is which way a datagram went.
type Direction uint8

const (
	ToTarget Direction = iota // from the client side to the target
	ToClient                  // from the target to the client
	ToSocket                  // received by a Socket
)

func (d Direction) String() string {
	switch d {
	case ToTarget:
		return "to-target"
	case ToClient:
		return "to-client"
	}
	return "to-socket"
}

// Action is what happens to a datagram the proxy received.
type Action uint8

const (
	ActionPass    Action = iota // forwarded as received
	ActionDrop                  // discarded
	ActionHold                  // kept until Release (or Discard)
	ActionReplace               // Verdict.Data forwarded instead
)

func (a Action) String() string {
	switch a {
	case ActionDrop:
		return "drop"
	case ActionHold:
		return "hold"
	case ActionReplace:
		return "replace"
	}
	return "pass"
}

// Verdict is a hook's decision on one datagram.
type Verdict struct {
	Action Action
	Data   []byte // ActionReplace: what to forward instead
}

// The verdicts without data.
var (
	Pass = Verdict{Action: ActionPass}
	Drop = Verdict{Action: ActionDrop}
	Hold = Verdict{Action: ActionHold}
)

// Replace forwards b instead of the datagram received: a tampered copy.
// The proxy sends b as it is, after the hook returns.
func Replace(b []byte) Verdict { return Verdict{Action: ActionReplace, Data: b} }

// Datagram is one recorded datagram.
type Datagram struct {
	Seq      int            // order of arrival at this Proxy or Socket, from 0
	Dir      Direction      // ToTarget, ToClient; ToSocket for what a Socket received
	Time     time.Time      // when it was received (or injected)
	Src, Dst netip.AddrPort // who sent it and where it was going
	Via      netip.AddrPort // Proxy: its own socket it arrived at (injected: left from)
	Data     []byte         // a copy of the UDP payload as received (or injected)
	Injected bool           // sent by Inject or InjectFrom, not forwarded
	// Action is, for what a Proxy received, the hook's verdict, or
	// ActionDrop if the proxy dropped it without asking the hook (no
	// client yet, a closed old mapping, a direction down).
	Action Action
}

// Kind classifies the payload (see Classify).
func (d *Datagram) Kind() Kind { return Classify(d.Data) }

// HIPType returns the HIP packet type if the payload is HIP control.
func (d *Datagram) HIPType() (uint8, bool) { return HIPType(d.Data) }

// SPI returns the SPI if the payload is ESP.
func (d *Datagram) SPI() (uint32, bool) { return SPI(d.Data) }

func (d Datagram) String() string {
	what := d.Kind().String()
	if t, ok := d.HIPType(); ok {
		what = TypeName(t)
	} else if spi, ok := d.SPI(); ok {
		what = fmt.Sprintf("ESP spi=%d", spi)
	}
	inj := ""
	if d.Injected {
		inj = " injected"
	}
	return fmt.Sprintf("#%d %v %v->%v %s len=%d%s", d.Seq, d.Dir, d.Src, d.Dst, what, len(d.Data), inj)
}

// Counts are one direction's counters.
type Counts struct {
	Datagrams, Octets uint64 // received (UDP payload octets)
	Forwarded         uint64 // sent on: passed, replaced, or released
	Dropped           uint64 // dropped by the hook, held beyond MaxHeld, or dropped before the hook (Datagram.Action)
	Held              uint64 // held by the hook (ever)
	Injected          uint64 // sent by Inject or InjectFrom
	InjectedOctets    uint64
	Unrecorded        uint64 // received or injected beyond MaxRecorded
}

// recorder is the bounded record of a Proxy or Socket.
type recorder struct {
	seq int
	rec []Datagram
}

// add records d (numbered) unless the record is full; it reports false
// then.
func (r *recorder) add(d *Datagram) bool {
	d.Seq = r.seq
	r.seq++
	if len(r.rec) >= MaxRecorded {
		return false
	}
	r.rec = append(r.rec, *d)
	return true
}

func (r *recorder) snapshot() []Datagram {
	out := make([]Datagram, len(r.rec))
	copy(out, r.rec)
	return out
}

type held struct {
	d   Datagram
	dst netip.AddrPort
}

// Proxy is a UDP man in the middle in front of one target: see the package
// documentation. Its methods are safe for concurrent use, and may be
// called from the hook.
type Proxy struct {
	conn   *net.UDPConn // the client-facing socket (front.conn)
	addr   netip.AddrPort
	target netip.AddrPort
	front  *mapping // the client-facing socket; target-facing too until the first Rebind

	mu        sync.Mutex
	client    netip.AddrPort
	hasClient bool
	hook      func(*Datagram) Verdict
	rec       recorder
	held      []held
	counts    [2]Counts
	sockets   map[netip.Addr]*Socket
	closed    bool
	out       *mapping      // the target-facing socket: where the target sees the client
	old       []*mapping    // earlier target-facing sockets still forwarding (nat.go)
	keepOld   time.Duration // SetOldMapping
	blocked   [2]bool       // Blackhole, DropDirection (path.go)

	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New starts a proxy on 127.0.0.1 (or ::1 for an IPv6 target), on an
// ephemeral port, in front of target, which must be a loopback address
// (an unspecified address is taken as loopback).
func New(target netip.AddrPort) (*Proxy, error) {
	ip := netip.MustParseAddr("127.0.0.1")
	if target.Addr().Unmap().Is6() {
		ip = netip.IPv6Loopback()
	}
	return NewAt(netip.AddrPortFrom(ip, 0), target)
}

// NewAt starts a proxy listening on listen (loopback, port 0 for an
// ephemeral one) in front of target (loopback).
func NewAt(listen, target netip.AddrPort) (*Proxy, error) {
	target = loopbackTarget(target)
	if !isLoopback(target.Addr()) {
		return nil, fmt.Errorf("mitm: target %v is not a loopback address", target)
	}
	conn, addr, err := listenUDP(listen)
	if err != nil {
		return nil, err
	}
	front := &mapping{conn: conn, addr: addr}
	p := &Proxy{conn: conn, addr: addr, target: target, front: front, out: front, sockets: map[netip.Addr]*Socket{}}
	p.wg.Add(1)
	go p.loop(front)
	return p, nil
}

// Addr is the proxy's client-facing address: give it to the client as the
// target's locator. It does not change with Rebind.
func (p *Proxy) Addr() netip.AddrPort { return p.addr }

// Target is the address datagrams from the client side are forwarded to.
func (p *Proxy) Target() netip.AddrPort { return p.target }

// Client returns the client's address, once known.
func (p *Proxy) Client() (netip.AddrPort, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client, p.hasClient
}

// SetClient sets where datagrams from the target go, e.g. to a new client
// node that replaced the first one.
func (p *Proxy) SetClient(a netip.AddrPort) {
	p.mu.Lock()
	p.client, p.hasClient = unmap(a), true
	p.mu.Unlock()
}

// SetHook sets the function that decides each received datagram's fate;
// nil passes everything. It runs on the proxy's goroutine, one datagram at
// a time, without the proxy's lock held; d.Data is the hook's own copy,
// which it may modify and return with Replace.
func (p *Proxy) SetHook(h func(d *Datagram) Verdict) {
	p.mu.Lock()
	p.hook = h
	p.mu.Unlock()
}

// Recorded returns every datagram recorded so far, in order.
func (p *Proxy) Recorded() []Datagram {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rec.snapshot()
}

// Select returns the recorded datagrams for which keep is true.
func (p *Proxy) Select(keep func(*Datagram) bool) []Datagram {
	var out []Datagram
	for _, d := range p.Recorded() {
		if keep(&d) {
			out = append(out, d)
		}
	}
	return out
}

// Counts returns the counters of one direction (ToTarget or ToClient).
func (p *Proxy) Counts(dir Direction) Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	if dir > ToClient {
		return Counts{}
	}
	return p.counts[dir]
}

// Held returns the datagrams held now, in order.
func (p *Proxy) Held() []Datagram {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Datagram, len(p.held))
	for i, h := range p.held {
		out[i] = h.d
	}
	return out
}

// Release sends the held datagrams on, in the order they arrived, and
// returns how many. Those to the target leave from the target-facing
// socket of the moment, which a Rebind since they arrived has changed.
func (p *Proxy) Release() int {
	p.mu.Lock()
	hs := p.held
	p.held = nil
	for _, h := range hs {
		p.counts[h.d.Dir].Forwarded++
	}
	out := p.out.conn
	p.mu.Unlock()
	for _, h := range hs {
		conn := p.conn
		if h.d.Dir == ToTarget {
			conn = out
		}
		_, _ = conn.WriteToUDPAddrPort(h.d.Data, h.dst)
	}
	return len(hs)
}

// Discard drops the held datagrams and returns how many.
func (p *Proxy) Discard() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.held)
	for _, h := range p.held {
		p.counts[h.d.Dir].Dropped++
	}
	p.held = nil
	return n
}

// Inject sends b from the proxy's socket: to the target (ToTarget), from
// the target-facing socket, so it looks as if the client sent it, or to
// the client (ToClient), from Addr, as if the target did. It is recorded
// as injected. Blackhole and DropDirection do not stop it.
func (p *Proxy) Inject(dir Direction, b []byte) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return net.ErrClosed
	}
	var dst netip.AddrPort
	from := p.front
	switch dir {
	case ToTarget:
		dst = p.target
		from = p.out
	case ToClient:
		if !p.hasClient {
			p.mu.Unlock()
			return errors.New("mitm: no client yet")
		}
		dst = p.client
	default:
		p.mu.Unlock()
		return fmt.Errorf("mitm: cannot inject %v", dir)
	}
	p.noteInjected(dir, from.addr, dst, b)
	p.mu.Unlock()
	_, err := from.conn.WriteToUDPAddrPort(b, dst)
	return err
}

// InjectFrom sends b to dst (loopback) from src, another loopback address
// (any of 127.0.0.0/8 on Linux, or ::1), through a Socket the proxy opens
// on src at the first use and closes in Close. The Socket is returned so
// that the caller can see what came back to that address. The datagram is
// recorded as injected, ToTarget if dst is the target, else ToClient.
func (p *Proxy) InjectFrom(src netip.Addr, dst netip.AddrPort, b []byte) (*Socket, error) {
	s, err := p.Socket(src)
	if err != nil {
		return nil, err
	}
	dst = unmap(dst)
	dir := ToClient
	if dst == p.target {
		dir = ToTarget
	}
	p.mu.Lock()
	p.noteInjected(dir, s.Addr(), dst, b)
	p.mu.Unlock()
	return s, s.Send(dst, b)
}

// Socket returns the proxy's Socket on src, opening it at the first call.
func (p *Proxy) Socket(src netip.Addr) (*Socket, error) {
	src = src.Unmap()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, net.ErrClosed
	}
	if s := p.sockets[src]; s != nil {
		return s, nil
	}
	s, err := Listen(src)
	if err != nil {
		return nil, err
	}
	p.sockets[src] = s
	return s, nil
}

// noteInjected records and counts an injected datagram; p.mu is held.
func (p *Proxy) noteInjected(dir Direction, src, dst netip.AddrPort, b []byte) {
	d := Datagram{Dir: dir, Time: time.Now(), Src: src, Dst: dst, Via: src, Data: clone(b), Injected: true}
	c := &p.counts[dir]
	c.Injected++
	c.InjectedOctets += uint64(len(b))
	if !p.rec.add(&d) {
		c.Unrecorded++
	}
}

// Close stops the proxy's goroutines and closes its sockets (the
// target-facing ones a Rebind opened and the InjectFrom ones too),
// dropping anything still held.
func (p *Proxy) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.held = nil
		socks := p.sockets
		p.sockets = nil
		others := p.targetFacing()
		p.mu.Unlock()
		err = p.conn.Close()
		for _, c := range others {
			c.Close() // an old mapping may have closed itself already
		}
		p.wg.Wait()
		for _, s := range socks {
			s.Close()
		}
	})
	return err
}

// loop is the goroutine of one of the proxy's sockets, m: the
// client-facing one, or a target-facing one a Rebind opened.
func (p *Proxy) loop(m *mapping) {
	defer p.wg.Done()
	readLoop(m.conn, func(b []byte, from netip.AddrPort) { p.handle(m, b, from) })
	if m != p.front {
		p.retire(m)
	}
}

// readLoop reads conn until it is closed, or its read deadline passes,
// and hands each datagram (valid until handle returns) and its unmapped
// source to handle. Other read errors (a truncated datagram, say) are not
// ours to judge: it reads on.
func readLoop(conn *net.UDPConn, handle func(b []byte, from netip.AddrPort)) {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			continue
		}
		handle(buf[:n], unmap(from))
	}
}

// handle decides the fate of one datagram received on m. On the
// client-facing socket, what comes from the target goes to the client
// (unless a Rebind moved the target-facing side away and the old mapping
// is closed) and anything else to the target; on a target-facing socket a
// Rebind opened, everything goes to the client.
func (p *Proxy) handle(m *mapping, b []byte, from netip.AddrPort) {
	now := time.Now()
	p.mu.Lock()
	d := Datagram{Time: now, Src: from, Via: m.addr, Data: clone(b)}
	closed := false // the target sent to an old mapping that is closed
	switch {
	case m != p.front:
		d.Dir = ToClient
	case from == p.target:
		d.Dir = ToClient
		closed = p.out != p.front && !p.frontKept(now)
	default:
		if !p.hasClient {
			p.client, p.hasClient = from, true
		}
		d.Dir = ToTarget
	}
	if d.Dir == ToClient {
		d.Dst = p.client
	} else {
		d.Dst = p.target
	}
	c := &p.counts[d.Dir]
	c.Datagrams++
	c.Octets += uint64(len(b))
	if d.Dir == ToClient && !p.hasClient || closed || p.blocked[d.Dir] {
		// The target spoke first, and there is no one to forward to; or
		// it spoke to a mapping that is gone; or the path is down.
		d.Action = ActionDrop
		c.Dropped++
		if !p.rec.add(&d) {
			c.Unrecorded++
		}
		p.mu.Unlock()
		return
	}
	hook := p.hook
	p.mu.Unlock()

	v := Pass
	if hook != nil {
		hd := d
		hd.Data = clone(b)
		v = hook(&hd)
	}
	d.Action = v.Action
	out := d.Data

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	if !p.rec.add(&d) {
		c.Unrecorded++
	}
	switch v.Action {
	case ActionDrop:
		c.Dropped++
		out = nil
	case ActionHold:
		if len(p.held) < MaxHeld {
			p.held = append(p.held, held{d: d, dst: d.Dst})
			c.Held++
		} else {
			c.Dropped++
		}
		out = nil
	case ActionReplace:
		out = v.Data
		c.Forwarded++
	default:
		c.Forwarded++
	}
	conn := p.conn
	if d.Dir == ToTarget {
		conn = p.out.conn
	}
	p.mu.Unlock()
	if out != nil {
		_, _ = conn.WriteToUDPAddrPort(out, d.Dst)
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

func isLoopback(a netip.Addr) bool { return a.Unmap().IsLoopback() }

// loopbackTarget turns an unspecified address (a node listening on ":0")
// into the loopback address of its family.
func loopbackTarget(t netip.AddrPort) netip.AddrPort {
	t = unmap(t)
	if t.Addr().IsUnspecified() {
		ip := netip.MustParseAddr("127.0.0.1")
		if t.Addr().Is6() {
			ip = netip.IPv6Loopback()
		}
		return netip.AddrPortFrom(ip, t.Port())
	}
	return t
}

// listenUDP opens a UDP socket on a loopback address.
func listenUDP(at netip.AddrPort) (*net.UDPConn, netip.AddrPort, error) {
	at = unmap(at)
	if !isLoopback(at.Addr()) {
		return nil, netip.AddrPort{}, fmt.Errorf("mitm: %v is not a loopback address", at.Addr())
	}
	network := "udp4"
	if at.Addr().Is6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(at))
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	return conn, unmap(conn.LocalAddr().(*net.UDPAddr).AddrPort()), nil
}
