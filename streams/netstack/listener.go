package netstack

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// listener is a net.Listener over a listening netstack TCP endpoint.
type listener struct {
	t     *Transport
	ep    tcpip.Endpoint
	wq    waiter.Queue
	entry waiter.Entry
	ready chan struct{} // a connection waits in the accept queue
	addr  *overlay.Addr

	acceptMu sync.Mutex
	dl       deadline // Accept's (SetDeadline)
	done     chan struct{}
	closed   atomic.Bool
	shutOnce sync.Once
}

var _ net.Listener = (*listener)(nil)

// listen binds a TCP endpoint to port (0: an ephemeral one) on every
// address of the stack, which is the local HIT alone, and listens.
func (t *Transport) listen(port int) (*listener, error) {
	l := &listener{t: t, done: make(chan struct{}), dl: newDeadline()}
	ep, terr := t.stack.NewEndpoint(tcp.ProtocolNumber, ipv6.ProtocolNumber, &l.wq)
	if terr != nil {
		return nil, mapError(terr)
	}
	l.ep = ep
	if terr := ep.Bind(tcpip.FullAddress{NIC: nicID, Port: uint16(port)}); terr != nil {
		ep.Close()
		return nil, mapError(terr)
	}
	if terr := ep.Listen(t.cfg.Backlog); terr != nil {
		ep.Close()
		return nil, mapError(terr)
	}
	a, terr := ep.GetLocalAddress()
	if terr != nil {
		ep.Close()
		return nil, mapError(terr)
	}
	l.addr = &overlay.Addr{HIT: t.local, Port: int(a.Port)}
	l.entry, l.ready = waiter.NewChannelEntry(waiter.ReadableEvents | waiter.EventHUp | waiter.EventErr)
	l.wq.EventRegister(&l.entry)
	if err := t.trackListener(l); err != nil {
		l.shut()
		return nil, err
	}
	return l, nil
}

// Accept waits for the next connection whose handshake has completed.
// Its RemoteAddr is the HIT of the ESP SA its SYN arrived on.
func (l *listener) Accept() (net.Conn, error) {
	l.acceptMu.Lock()
	defer l.acceptMu.Unlock()
	for {
		if isClosed(l.done) {
			return nil, l.opErr(errClosed)
		}
		if l.dl.Passed() {
			return nil, l.opErr(os.ErrDeadlineExceeded)
		}
		var peer tcpip.FullAddress
		ep, wq, terr := l.ep.Accept(&peer)
		switch terr.(type) {
		case nil:
			// Keep-alive is not inherited from the listener.
			l.t.setOptions(ep)
			raddr := &overlay.Addr{HIT: wire.HIT(peer.Addr.As16()), Port: int(peer.Port)}
			c, err := l.t.newConn(ep, wq, raddr)
			if err != nil {
				return nil, l.opErr(err)
			}
			return c, nil
		case *tcpip.ErrWouldBlock:
			select {
			case <-l.ready:
			case <-l.done:
			case <-l.dl.Wait():
			}
		default:
			if isClosed(l.done) {
				return nil, l.opErr(errClosed)
			}
			return nil, l.opErr(mapError(terr))
		}
	}
}

// Close stops listening; connections not yet accepted are reset, and a
// blocked Accept returns net.ErrClosed. Accepted connections stay open.
func (l *listener) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return l.opErr(errClosed)
	}
	l.t.forgetListener(l)
	l.shut()
	return nil
}

// SetDeadline sets the deadline of Accept, as *net.TCPListener's: a
// blocked or later Accept returns an error wrapping os.ErrDeadlineExceeded
// (Timeout true) once it passes; the zero time means none.
func (l *listener) SetDeadline(t time.Time) error {
	if isClosed(l.done) {
		return l.opErr(errClosed)
	}
	l.dl.Set(t)
	return nil
}

// Addr returns the local HIT and the port.
func (l *listener) Addr() net.Addr { return l.addr }

func (l *listener) shut() {
	l.shutOnce.Do(func() {
		close(l.done)
		l.dl.Stop()
		l.wq.EventUnregister(&l.entry)
		l.ep.Close()
	})
}

func (l *listener) opErr(err error) error {
	return &net.OpError{Op: "accept", Net: "hip", Addr: l.addr, Err: err}
}
