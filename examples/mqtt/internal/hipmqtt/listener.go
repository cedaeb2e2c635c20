package hipmqtt

import (
	"log/slog"
	"net"
	"sync"

	"github.com/mochi-mqtt/server/v2/listeners"

	"hipnet.dev/hipnet"
)

// Listener serves a mochi-mqtt broker on a net.Listener from
// hipnet.Node.Listen (it implements mochi's listeners.Listener). Only
// connections whose RemoteAddr is a *hipnet.Addr, that is whose peer HIT
// the base exchange authenticated, reach the broker.
type Listener struct {
	id string
	ln net.Listener

	mu     sync.Mutex
	log    *slog.Logger
	conns  map[net.Conn]struct{} // accepted and not yet ended
	closed bool
}

var _ listeners.Listener = (*Listener)(nil)

// NewListener wraps ln; id names the listener inside the broker.
func NewListener(id string, ln net.Listener) *Listener {
	return &Listener{id: id, ln: ln, log: slog.New(slog.DiscardHandler), conns: map[net.Conn]struct{}{}}
}

// ID returns the listener's id.
func (l *Listener) ID() string { return l.id }

// Address returns "[HIT]:port".
func (l *Listener) Address() string { return l.ln.Addr().String() }

// Protocol returns "hip".
func (l *Listener) Protocol() string { return l.ln.Addr().Network() }

// Init takes the broker's logger; the hipnet listener is open already.
func (l *Listener) Init(log *slog.Logger) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if log != nil {
		l.log = log
	}
	return nil
}

// Serve accepts connections until Close and hands each to establish (the
// broker's session loop) on its own goroutine.
func (l *Listener) Serve(establish listeners.EstablishFn) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return // only Close ends a hipnet listener
		}
		if _, ok := PeerHIT(c); !ok {
			c.Close()
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[c] = struct{}{}
		log := l.log
		l.mu.Unlock()
		go func() {
			err := establish(l.id, c)
			log.Debug("mqtt session ended", "peer", c.RemoteAddr().String(), "error", err)
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
			c.Close()
		}()
	}
}

// Close stops accepting, lets the broker disconnect its clients
// (closeClients), then closes every connection still open, including
// those that have not sent CONNECT yet and so are unknown to the broker,
// whose shutdown would otherwise wait for them.
func (l *Listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	l.ln.Close()
	closeClients(l.id)
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
}

// PeerHIT returns the authenticated HIT of a connection from a hipnet
// Node, and false for any other connection.
func PeerHIT(c net.Conn) (hipnet.HIT, bool) {
	if c == nil {
		return hipnet.HIT{}, false
	}
	a, ok := c.RemoteAddr().(*hipnet.Addr)
	if !ok || a == nil {
		return hipnet.HIT{}, false
	}
	return a.HIT, true
}
