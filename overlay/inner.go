package overlay

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/deadline"
)

// InnerConn is a datagram endpoint on an inner UDP port of the stack: a
// net.PacketConn whose addresses are *Addr (peer HIT and port). Datagrams
// travel as BEET inner UDP (RFC 7402 App. B) inside ESP. It is safe for
// concurrent use.
type InnerConn struct {
	s     *Stack
	port  uint16
	laddr *Addr
	in    inbox
	rd    deadline.Deadline
	wd    deadline.Deadline

	// noConnect: WriteTo never queues nor starts a base exchange (see
	// SetAutoConnect).
	noConnect atomic.Bool

	closeOnce sync.Once
	closed    chan struct{}
}

var _ net.PacketConn = (*InnerConn)(nil)

// Ephemeral inner ports (RFC 6335 §6).
const ephemeralFirst, ephemeralLast = 49152, 65535

// ListenInner binds inner UDP port (1-65535; 0 picks a free ephemeral port
// from 49152-65535). It fails with ErrPortInUse if the port is bound and
// ErrClosed after Close.
func (s *Stack) ListenInner(port int) (*InnerConn, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("hip: inner port %d out of range", port)
	}
	s.portsMu.Lock()
	defer s.portsMu.Unlock()
	select {
	case <-s.closing:
		return nil, ErrClosed
	default:
	}
	old := *s.ports.Load()
	if port == 0 {
		var r [2]byte
		_, _ = rand.Read(r[:])
		n := ephemeralLast - ephemeralFirst + 1
		start := int(binary.BigEndian.Uint16(r[:])) % n
		for i := range n {
			if p := ephemeralFirst + (start+i)%n; old[uint16(p)] == nil {
				port = p
				break
			}
		}
		if port == 0 {
			return nil, fmt.Errorf("%w: no free ephemeral port", ErrPortInUse)
		}
	} else if old[uint16(port)] != nil {
		return nil, fmt.Errorf("%w: %d", ErrPortInUse, port)
	}
	c := &InnerConn{
		s: s, port: uint16(port), laddr: &Addr{HIT: s.hit, Port: port},
		rd: deadline.New(), wd: deadline.New(), closed: make(chan struct{}),
	}
	c.in.init()
	m := make(map[uint16]*InnerConn, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[c.port] = c
	s.ports.Store(&m)
	return c, nil
}

// inner returns the InnerConn bound to port, or nil. Lock-free.
func (s *Stack) inner(port uint16) *InnerConn { return (*s.ports.Load())[port] }

func (s *Stack) unbind(c *InnerConn) {
	s.portsMu.Lock()
	defer s.portsMu.Unlock()
	old := *s.ports.Load()
	if old[c.port] != c {
		return
	}
	m := make(map[uint16]*InnerConn, len(old))
	for k, v := range old {
		if k != c.port {
			m[k] = v
		}
	}
	s.ports.Store(&m)
}

// ReadFrom reads the next datagram into b and returns its length and
// sender (*Addr). A datagram longer than b is truncated, as with UDP.
func (c *InnerConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddr(b)
	if err != nil {
		return 0, nil, err
	}
	return n, &from, nil
}

// ReadFromAddr is ReadFrom returning the sender as a value: it allocates
// nothing (compare net.UDPConn.ReadFromUDPAddrPort).
func (c *InnerConn) ReadFromAddr(b []byte) (int, Addr, error) {
	for {
		// Checked one by one, not in one select: a select with a default
		// locks both channels, and this runs once a datagram.
		if deadline.Closed(c.closed) {
			return 0, Addr{}, c.opError("read", nil, ErrClosed)
		}
		if c.rd.Passed() {
			return 0, Addr{}, c.opError("read", nil, os.ErrDeadlineExceeded)
		}
		if it, ok := c.in.pop(); ok {
			n := copy(b, (*it.buf)[it.off:it.off+it.n])
			putBuf(it.buf)
			return n, Addr{HIT: it.from, Port: int(it.port)}, nil
		}
		select {
		case <-c.in.ready:
		case <-c.closed:
		case <-c.rd.Wait():
		}
	}
}

// WriteTo sends b to addr (an *Addr) as one inner UDP datagram. With
// an association it is sealed and sent at once; while the base exchange
// runs it is queued (bounded: ErrQueueFull beyond Config.QueueLimit) and
// the exchange is started if needed. Errors wrap ErrUnknownPeer (no
// locator), ErrNotAuthorized, ErrQueueFull, ErrClosed; a passed write
// deadline gives a timeout net.Error.
func (c *InnerConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	a, ok := addr.(*Addr)
	switch {
	case !ok:
		return 0, c.opError("write", addr, fmt.Errorf("hip: address %v is not a HIP address", addr))
	case a == nil:
		return 0, c.opError("write", nil, errors.New("hip: nil address"))
	}
	return c.WriteToAddr(b, *a)
}

// WriteToAddr is WriteTo with the destination as a value: with an
// association it allocates nothing (compare
// net.UDPConn.WriteToUDPAddrPort).
func (c *InnerConn) WriteToAddr(b []byte, to Addr) (int, error) {
	fail := func(err error) (int, error) {
		a := to // only a failed write puts an address on the heap
		return 0, c.opError("write", &a, err)
	}
	if deadline.Closed(c.closed) { // as in ReadFromAddr
		return fail(ErrClosed)
	}
	if c.wd.Passed() {
		return fail(os.ErrDeadlineExceeded)
	}
	if to.Port < 1 || to.Port > 65535 {
		return fail(fmt.Errorf("hip: bad destination port %d", to.Port))
	}
	if len(b) > MaxPayload {
		return fail(fmt.Errorf("hip: datagram of %d octets exceeds %d", len(b), MaxPayload))
	}
	var err error
	if c.noConnect.Load() {
		err = c.s.sendAssociated(to.HIT, c.port, uint16(to.Port), b)
	} else {
		err = c.s.send(to.HIT, c.port, uint16(to.Port), b)
	}
	if err != nil {
		return fail(err)
	}
	return len(b), nil
}

// SetAutoConnect sets what WriteTo does for a peer that has no outbound
// SA (no association, or one still in its base exchange, or one that
// ended): queue the datagram and start the base exchange (on, the
// default), or fail at once with an error wrapping ErrUnknownPeer (off).
//
// Off suits a user that establishes associations itself (Stack.Connect)
// and must not revive one that ended: RFC 7401 §4.4.3 has a datagram sent
// in CLOSED start a new base exchange, so a protocol that still has
// packets in flight for a closed peer (QUIC's acknowledgements,
// keep-alives, CONNECTION_CLOSE) would otherwise open a new association,
// with the I1 retransmissions and queue that go with it, to a peer that
// just left.
func (c *InnerConn) SetAutoConnect(on bool) { c.noConnect.Store(!on) }

// Live is Stack.Live, for a user that holds only the InnerConn.
func (c *InnerConn) Live(hit wire.HIT) bool { return c.s.Live(hit) }

// WatchAssociation is Stack.WatchAssociation, for a user that holds only
// the InnerConn.
func (c *InnerConn) WatchAssociation(hit wire.HIT) (w AssocWatch, changed <-chan struct{}) {
	return c.s.WatchAssociation(hit)
}

// ClosedByPeer is Stack.ClosedByPeer, for a user that holds only the
// InnerConn.
func (c *InnerConn) ClosedByPeer(hit wire.HIT) bool { return c.s.ClosedByPeer(hit) }

// sendAssociated is send without starting a base exchange
// (SetAutoConnect off): with no outbound SA it fails, unless the base
// exchange under way is keyed (ConnectKeyed), whose outbound SA comes with
// the R2: then the datagram waits in the queue for it. The SA is loaded
// once, so a concurrent removal costs at most this one datagram on the
// old SA, never a new exchange.
func (s *Stack) sendAssociated(dst wire.HIT, srcPort, dstPort uint16, payload []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if p := s.lookupPeer(dst); p != nil {
		if o := p.out.Load(); o != nil {
			return s.seal(p, o, srcPort, dstPort, payload)
		}
		if p.secret.Load() != nil {
			return s.enqueueKeyed(p, srcPort, dstPort, payload) // send.go
		}
	}
	return fmt.Errorf("%w: no association with %v", ErrUnknownPeer, dst)
}

// Close unbinds the port; blocked reads return ErrClosed.
func (c *InnerConn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.closed)
		c.s.unbind(c)
		c.in.close()
	})
	if !first {
		return c.opError("close", nil, ErrClosed)
	}
	return nil
}

// LocalAddr returns the node's HIT and the bound port (*Addr).
func (c *InnerConn) LocalAddr() net.Addr { return c.laddr }

// SetDeadline sets the read and write deadlines (package net semantics:
// after Close, an error wrapping ErrClosed and net.ErrClosed).
func (c *InnerConn) SetDeadline(t time.Time) error {
	if deadline.Closed(c.closed) {
		return c.opError("set", nil, ErrClosed)
	}
	c.rd.Set(t)
	c.wd.Set(t)
	return nil
}

// SetReadDeadline sets the deadline for ReadFrom; zero means none.
func (c *InnerConn) SetReadDeadline(t time.Time) error {
	if deadline.Closed(c.closed) {
		return c.opError("set", nil, ErrClosed)
	}
	c.rd.Set(t)
	return nil
}

// SetWriteDeadline sets the deadline for WriteTo; zero means none. WriteTo
// never blocks for long (it seals and sends, or queues), so only a deadline
// already passed has an effect.
func (c *InnerConn) SetWriteDeadline(t time.Time) error {
	if deadline.Closed(c.closed) {
		return c.opError("set", nil, ErrClosed)
	}
	c.wd.Set(t)
	return nil
}

func (c *InnerConn) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: "hip", Source: c.laddr, Addr: addr, Err: err}
}
