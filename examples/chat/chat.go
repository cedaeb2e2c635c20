package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"hipnet.dev/hipnet"
)

// chatConfig is what a chat needs besides its node.
type chatConfig struct {
	port   int                             // the stream port, dialled and listened on
	book   *contacts                       // petnames; its HITs may chat
	peers  map[hipnet.HIT][]netip.AddrPort // -peer: dialled and kept connected
	relays map[hipnet.HIT]bool             // named "relay" in /peers
	linger time.Duration                   // how long leaving may wait for peers
	out    *console
}

// chat is one running chat: the node, the listener, and a member per peer
// that is dialled or has dialled in.
type chat struct {
	chatConfig
	node *hipnet.Node
	ln   net.Listener

	ctx     context.Context // ends when dialling and writing stop
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the acceptor, and each member's dialer and writer
	readers sync.WaitGroup // one per stream

	mu       sync.Mutex
	members  map[hipnet.HIT]*member
	stopping bool          // streams are no longer taken
	changed  chan struct{} // closed, and replaced, when an outbox shrinks or a stream goes
}

// newChat listens on the chat port and starts dialling the peers of -peer.
func newChat(node *hipnet.Node, cfg chatConfig) (*chat, error) {
	ln, err := node.Listen("tcp", fmt.Sprintf(":%d", cfg.port))
	if err != nil {
		return nil, err
	}
	c := &chat{chatConfig: cfg, node: node, ln: ln, members: map[hipnet.HIT]*member{}, changed: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.Lock()
	for h := range cfg.peers {
		c.memberLocked(h)
	}
	c.mu.Unlock()
	c.wg.Add(1)
	go c.acceptLoop()
	if len(cfg.relays) > 0 {
		c.wg.Add(1)
		go c.watchRelays()
	}
	return c, nil
}

// relayPoll is how often watchRelays looks at the relay registrations.
const relayPoll = 500 * time.Millisecond

// watchRelays tells, on standard error, when the node registers with a
// relay and when it loses a registration (hipnet registers again on its
// own).
func (c *chat) watchRelays() {
	defer c.wg.Done()
	t := time.NewTicker(relayPoll)
	defer t.Stop()
	registered := map[netip.AddrPort]bool{}
	for {
		for _, r := range c.node.Status().Relays {
			if r.Registered == registered[r.Addr] {
				continue
			}
			registered[r.Addr] = r.Registered
			switch {
			case !r.Registered:
				c.out.notice("not registered with relay %v at %v", r.HIT, r.Addr)
			case r.Reflexive.IsValid():
				c.out.notice("registered with relay %v at %v, which sees us at %v", r.HIT, r.Addr, r.Reflexive)
			default:
				c.out.notice("registered with relay %v at %v", r.HIT, r.Addr)
			}
		}
		select {
		case <-t.C:
		case <-c.ctx.Done():
			return
		}
	}
}

// isPeer reports whether h may chat: named by -peer or in the contacts.
func (c *chat) isPeer(h hipnet.HIT) bool {
	if _, ok := c.peers[h]; ok {
		return true
	}
	_, ok := c.book.byHIT[h]
	return ok && h != c.node.HIT()
}

// memberLocked returns the member for h, adding it (and starting its
// goroutines) if h may chat; nil if it may not or the chat is stopping.
// c.mu is held.
func (c *chat) memberLocked(h hipnet.HIT) *member {
	if m := c.members[h]; m != nil {
		return m
	}
	if c.stopping || !c.isPeer(h) {
		return nil
	}
	_, dial := c.peers[h]
	m := &member{hit: h, name: c.book.name(h), dial: dial, wake: make(chan struct{}, 1)}
	c.members[h] = m
	c.wg.Add(1)
	go c.writeLoop(m)
	if dial {
		c.wg.Add(1)
		go c.dialLoop(m)
	}
	return m
}

// changedLocked wakes whoever waits for c.changed. c.mu is held.
func (c *chat) changedLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// acceptLoop takes the streams peers dial until the listener is closed.
// hipnet's Authorize has refused everyone who may not chat, but a relay
// is authorized too: its streams are closed unread.
func (c *chat) acceptLoop() {
	defer c.wg.Done()
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			if c.ctx.Err() == nil {
				c.out.notice("listener: %v", err)
			}
			return
		}
		var m *member
		a, ok := conn.RemoteAddr().(*hipnet.Addr)
		c.mu.Lock()
		if ok {
			m = c.memberLocked(a.HIT)
		}
		stopping := c.stopping
		c.mu.Unlock()
		if m == nil {
			conn.Close()
			if !stopping {
				c.out.notice("refused a stream from %v: not a chat peer", conn.RemoteAddr())
			}
			continue
		}
		c.addStream(m, conn, false)
	}
}

// addStream adds a stream to m and starts reading it; nil (and conn
// closed) if the chat is stopping.
func (c *chat) addStream(m *member, conn net.Conn, dialed bool) *stream {
	s := &stream{conn: conn, since: time.Now(), done: make(chan struct{})}
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		conn.Close()
		return nil
	}
	if !m.connected() {
		// Under c.mu, so that "joined" and "left" come in their order.
		c.out.notice("%s joined%s", m.name, c.path(m.hit))
	}
	if dialed {
		m.dialed = s
	} else {
		m.accepted = append(m.accepted, s)
	}
	c.readers.Add(1)
	c.mu.Unlock()
	go c.readLoop(m, s)
	m.poke()
	return s
}

// dropStream closes s and takes it from m.
func (c *chat) dropStream(m *member, s *stream) {
	s.conn.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.dialed == s {
		m.dialed = nil
	} else {
		m.accepted = slices.DeleteFunc(m.accepted, func(x *stream) bool { return x == s })
	}
	if !m.connected() && !c.stopping {
		c.out.notice("%s left", m.name)
	}
	c.changedLocked()
}

// path describes how the node reaches h: " (direct)" or " (relayed)".
func (c *chat) path(h hipnet.HIT) string {
	for _, p := range c.node.Peers() {
		if p.HIT == h && p.Path != "" {
			return " (" + p.Path + ")"
		}
	}
	return ""
}

// run chats until input ends, /quit, or ctx is done, then stops.
func (c *chat) run(ctx context.Context, stdin io.Reader) error {
	in := readInput(stdin)
	defer in.stop()
	for {
		select {
		case <-ctx.Done():
			c.stop(ctx, false)
			return nil
		case l, ok := <-in.lines:
			if !ok {
				err := c.stop(ctx, true)
				if in.err != nil {
					err = errors.Join(fmt.Errorf("reading input: %w", in.err), err)
				}
				return err
			}
			if c.command(l) {
				return c.stop(ctx, true)
			}
		}
	}
}

const help = `commands:
  /peers   the node's associations (HIT, path, locator, state, name)
           and relays (HIT, address, registration, address seen)
  /quit    leave (as at the end of input)
  /help    this
  //text   sends "/text"`

// command acts on one typed line: a command, or a message for everyone.
// It reports whether the line was /quit.
func (c *chat) command(l inputLine) (quit bool) {
	text := l.text
	if strings.TrimSpace(text) == "" {
		return false
	}
	if strings.HasPrefix(text, "/") && !strings.HasPrefix(text, "//") {
		switch cmd := strings.Fields(text)[0]; cmd {
		case "/peers":
			c.printPeers()
		case "/quit":
			return true
		case "/help":
			c.out.println(help)
		default:
			c.out.notice("unknown command %s (/help lists them)", cmd)
		}
		return false
	}
	if l.cut {
		c.out.notice("line cut to %d bytes", maxLine)
	}
	c.broadcast(strings.TrimPrefix(text, "/"))
	return false
}

// printPeers prints one line per association of the node,
// "peer HIT path locator state [name]", then one per relay,
// "relay HIT address registered|unregistered reflexive-address|-".
func (c *chat) printPeers() {
	ps := c.node.Peers()
	if len(ps) == 0 {
		c.out.println("no associations")
	}
	for _, p := range ps {
		loc := "-"
		if p.Locator.IsValid() {
			loc = p.Locator.String()
		}
		line := fmt.Sprintf("peer %v %s %s %s", p.HIT, p.Path, loc, p.State)
		if c.relays[p.HIT] {
			line += " relay"
		} else if n := c.book.name(p.HIT); n != p.HIT.String() {
			line += " " + n
		}
		c.out.println(line)
	}
	for _, r := range c.node.Status().Relays {
		state, seen := "unregistered", "-"
		if r.Registered {
			state = "registered"
		}
		if r.Reflexive.IsValid() {
			seen = r.Reflexive.String()
		}
		c.out.println(fmt.Sprintf("relay %v %v %s %s", r.HIT, r.Addr, state, seen))
	}
}

// broadcast queues a line for every member that can get it: the peers of
// -peer, present or not, and the contacts that are connected.
func (c *chat) broadcast(line string) {
	type drop struct {
		name string
		n    int
	}
	var drops []drop
	sent := 0
	c.mu.Lock()
	for _, m := range c.members {
		if !m.dial && !m.connected() {
			continue
		}
		if len(m.outbox) == maxQueue {
			m.outbox[0] = ""
			m.outbox = m.outbox[1:]
			if m.dropped++; m.dropped == 1 || m.dropped%100 == 0 {
				drops = append(drops, drop{m.name, m.dropped})
			}
		}
		m.outbox = append(m.outbox, line)
		m.poke()
		sent++
	}
	c.mu.Unlock()
	for _, d := range drops {
		c.out.notice("%s is away: %d lines dropped from its full queue", d.name, d.n)
	}
	if sent == 0 {
		c.out.notice("nobody is here: line not sent")
	}
}

// stop ends the chat. Gracefully, it waits (up to linger, and while ctx
// lasts) for every queued line to be written, ends its side of every
// stream and waits for the peers to end theirs, which they do once they
// have read everything; then, or at once if not graceful, it closes the
// streams and the node. It returns when every goroutine of the chat has,
// with an error naming the lines that could not be delivered.
func (c *chat) stop(ctx context.Context, graceful bool) error {
	deadline := time.Now().Add(c.linger)
	var undelivered error
	if graceful && !c.waitFor(ctx, deadline, c.drainedLocked) {
		undelivered = c.undelivered()
		graceful = false
	}
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	c.cancel()
	c.ln.Close()
	if !graceful {
		c.closeStreams()
	}
	c.wg.Wait() // no dialer, writer or acceptor: no new stream, no write
	if graceful {
		for _, s := range c.streams() {
			if cw, ok := s.conn.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			} else {
				s.conn.Close()
			}
		}
		c.waitFor(ctx, deadline, func() bool { return len(c.streamsLocked()) == 0 })
		c.closeStreams()
	}
	c.readers.Wait()
	c.node.Close()
	if ctx.Err() != nil {
		return nil // interrupted: leaving at once was asked for
	}
	return undelivered
}

// waitFor waits until cond (called with c.mu held) holds, the deadline
// passes or ctx ends; it reports whether cond held.
func (c *chat) waitFor(ctx context.Context, deadline time.Time, cond func() bool) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		c.mu.Lock()
		ok, changed := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// drainedLocked reports whether no member that can get lines has any
// waiting. c.mu is held.
func (c *chat) drainedLocked() bool {
	for _, m := range c.members {
		if m.pending() {
			return false
		}
	}
	return true
}

// undelivered reports the lines still queued, on standard error and as
// the error returned.
func (c *chat) undelivered() error {
	var errs []error
	c.mu.Lock()
	for _, m := range c.members {
		if n := len(m.outbox); n > 0 && (m.dial || m.connected()) {
			errs = append(errs, fmt.Errorf("%d line(s) not delivered to %s", n, m.name))
		}
	}
	c.mu.Unlock()
	for _, err := range errs {
		c.out.notice("%v", err)
	}
	return errors.Join(errs...)
}

// streams returns every stream of every member.
func (c *chat) streams() []*stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streamsLocked()
}

func (c *chat) streamsLocked() []*stream {
	var out []*stream
	for _, m := range c.members {
		if m.dialed != nil {
			out = append(out, m.dialed)
		}
		out = append(out, m.accepted...)
	}
	return out
}

// closeStreams closes every stream; their readers end and drop them.
func (c *chat) closeStreams() {
	for _, s := range c.streams() {
		s.conn.Close()
	}
}
