package netstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// nicID is the one interface of each Transport's stack.
const nicID tcpip.NICID = 1

// keepAliveCount is the number of unanswered keep-alive probes that end a
// connection (Linux's tcp_keepalive_probes, and package net's default).
const keepAliveCount = 9

// Transport is a userspace TCP/IP stack (gVisor netstack) whose one
// interface is the node's ESP security associations: stream sockets
// between HITs. It is safe for concurrent use.
type Transport struct {
	link  Link
	local wire.HIT
	cfg   Config
	log   *slog.Logger
	stack *stack.Stack
	ep    *endpoint
	stats counters
	done  chan struct{} // closed by Close

	mu        sync.Mutex
	closed    bool
	conns     map[*conn]struct{}
	listeners map[*listener]struct{}
	// dials are the Dials waiting for their SYN to be answered, by peer:
	// a WriteSegment error that says the peer cannot be reached fails
	// them at once (linkFailed).
	dials map[wire.HIT]map[chan error]struct{}
	// peers are the open connections by peer, each peer's association
	// watched (peerleft.go).
	peers map[wire.HIT]*peerConns
	wg    sync.WaitGroup // the watches of peers
}

// New starts a Transport on link: it creates the stack, gives its
// interface the address LocalHIT and a route to every HIT, and registers
// for the Link's TCP segments.
func New(link Link, cfg Config) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	local := link.LocalHIT()
	if local.IsZero() {
		return nil, errors.New("netstack: the Link has no local HIT")
	}
	t := &Transport{
		link:      link,
		local:     local,
		cfg:       cfg,
		log:       cfg.Logger,
		done:      make(chan struct{}),
		conns:     make(map[*conn]struct{}),
		listeners: make(map[*listener]struct{}),
		dials:     make(map[wire.HIT]map[chan error]struct{}),
		peers:     make(map[wire.HIT]*peerConns),
	}
	t.ep = newEndpoint(link, local, uint32(cfg.interfaceMTU()), cfg.fallbackMSS(), cfg.AckDelay, &t.stats, t.linkFailed)
	if t.stack, err = newStack(t.ep, local, cfg); err != nil {
		return nil, err
	}
	if bl, ok := link.(batchLink); ok {
		// The Link says where a receive batch ends: the endpoint holds
		// the batch's segments and hands them to netstack coalesced.
		t.ep.useGRO()
		bl.HandleSegmentBatches(protoTCP, t.ep.deliver, t.ep.flush)
	} else {
		link.HandleSegments(protoTCP, t.ep.deliver)
	}
	if rl, ok := link.(reopenLink); ok {
		rl.SetSegmentReopens(protoTCP, opensConnection)
	}
	return t, nil
}

// reopenLink is a Link that can be told which segments may start a base
// exchange with a peer that ended the association with CLOSE (hipnet's
// adapter of the overlay's Stack can). Only a SYN may: the rest of a
// connection with a peer that left (a retransmission, a keep-alive probe,
// the ACK of data that was in flight, an RST) would otherwise start an
// exchange with a host that is gone. Such a segment fails like a lost
// packet, and the connection ends as TCP decides (keep-alive).
type reopenLink interface {
	SetSegmentReopens(proto uint8, reopens func(seg []byte) bool)
}

// opensConnection reports whether seg, a TCP segment, is a SYN (without
// ACK: not a SYN-ACK).
func opensConnection(seg []byte) bool {
	if len(seg) < tcpMinHeaderLen {
		return false
	}
	f := header.TCP(seg).Flags()
	return f&header.TCPFlagSyn != 0 && f&header.TCPFlagAck == 0
}

// batchLink is a Link that also says where each receive batch ends
// (hipnet's adapter of the overlay's Stack does): flush is called on the
// goroutine that delivered the batch, after its last segment, before it
// waits for more.
type batchLink interface {
	HandleSegmentBatches(proto uint8, fn func(src wire.HIT, seg []byte), flush func())
}

// newStack builds a gVisor stack with IPv6 and TCP only, and one
// interface, ep, whose address is local.
//
// The IPv6 options are the zero ones on purpose: no duplicate address
// detection, router solicitation, SLAAC or MLD, so the stack sends
// nothing but TCP (an HIT is unique by construction, and there are no
// routers or multicast on an SA). HandleLocal keeps a Dial to the local
// HIT inside the stack.
func newStack(ep *endpoint, local wire.HIT, cfg Config) (*stack.Stack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv6.NewProtocolWithOptions(ipv6.Options{})},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
		HandleLocal:        true,
	})
	if err := setTCPOptions(s, cfg); err != nil {
		s.Destroy()
		return nil, err
	}
	if terr := s.CreateNICWithOptions(nicID, ep, stack.NICOptions{Name: "hip0"}); terr != nil {
		s.Destroy()
		return nil, fmt.Errorf("netstack: create NIC: %s", terr)
	}
	addr := tcpip.ProtocolAddress{
		Protocol:          ipv6.ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFrom16(local).WithPrefix(),
	}
	if terr := s.AddProtocolAddress(nicID, addr, stack.AddressProperties{}); terr != nil {
		s.Destroy()
		return nil, fmt.Errorf("netstack: add address %s: %s", local, terr)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv6EmptySubnet, NIC: nicID}})
	return s, nil
}

// setTCPOptions configures TCP: SACK, with SACK-based loss recovery
// (RFC 6675) rather than netstack's default RACK (RFC 8985), the
// congestion control of cfg, receive-buffer moderation, Nagle off as in
// package net, and the buffer sizes of cfg.
//
// RACK is off because in the gVisor version hipnet builds with it stalls
// under bursty loss: across a real veth whose receiving socket overflows
// now and then (TestE2ESmallMTUPath), an 8 MiB echo took 4 to 30 seconds
// in 5 of 25 runs instead of half a second, the sender in recovery with
// cwnd 5, ssthresh 2 and reordering seen, sending a few segments a
// second. With RACK off, 75 runs out of 75 took under a second, and bulk
// over the loopback is the same.
func setTCPOptions(s *stack.Stack, cfg Config) error {
	sack := tcpip.TCPSACKEnabled(true)
	recovery := tcpip.TCPRecovery(0)
	cc := tcpip.CongestionControlOption(cfg.CongestionControl)
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	delay := tcpip.TCPDelayEnabled(false)
	send := tcpip.TCPSendBufferSizeRangeOption{Min: bufferMin, Default: cfg.SendBufferSize, Max: cfg.SendBufferSize}
	recv := tcpip.TCPReceiveBufferSizeRangeOption{Min: bufferMin, Default: cfg.ReceiveBufferSize, Max: cfg.MaxReceiveBufferSize}
	for _, opt := range []tcpip.SettableTransportProtocolOption{&sack, &recovery, &cc, &moderate, &delay, &send, &recv} {
		if terr := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); terr != nil {
			return fmt.Errorf("netstack: TCP option %T: %s", opt, terr)
		}
	}
	return nil
}

// LocalHIT returns the Link's HIT, the address of every connection here.
func (t *Transport) LocalHIT() wire.HIT { return t.local }

// Stats returns the counters of the Transport.
func (t *Transport) Stats() Stats {
	st := t.stats.snapshot()
	st.Retransmits = t.stack.Stats().TCP.Retransmits.Value()
	st.AcksDelayed, st.AcksSaved = t.ep.acks.held.Load(), t.ep.acks.saved.Load()
	return st
}

// Dial opens a TCP connection to port on peer. It fails with an error
// wrapping overlay.ErrRefused (and syscall.ECONNREFUSED) when the peer
// answers with RST because nothing listens there, with the context's
// error when ctx ends first, with Config.Associate's error, or with the
// Link's when it reports the peer unreachable; and with errClosed
// (overlay.ErrClosed, net.ErrClosed) after Close. Errors are
// *net.OpError with Op "dial" and Net "hip".
func (t *Transport) Dial(ctx context.Context, peer wire.HIT, port int) (net.Conn, error) {
	raddr := &overlay.Addr{HIT: peer, Port: port}
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "hip", Source: &overlay.Addr{HIT: t.local}, Addr: raddr, Err: err}
	}
	switch {
	case port < 1 || port > 0xFFFF:
		return nil, opErr(fmt.Errorf("%w %d", errBadPort, port))
	case peer.IsZero():
		return nil, opErr(errors.New("netstack: no peer HIT"))
	case t.isClosed():
		return nil, opErr(errClosed)
	}
	ep, wq, err := t.connectAssociated(ctx, peer, port)
	if err != nil {
		return nil, opErr(err)
	}
	c, err := t.newConn(ep, wq, raddr)
	if err != nil {
		return nil, opErr(err)
	}
	return c, nil
}

// connectAssociated is connect with Config.Associate run beside it rather
// than before it, unless the Link says the association is up already.
// Associate runs on a goroutine of its own, so that the base exchange
// starts at once; the SYN is built meanwhile on the caller's, waits in
// the Link's queue, and leaves the moment the SAs are in place, from the
// goroutine that installs them. The caller then waits for the SYN-ACK
// itself, and netstack's notification wakes it directly: when the caller
// ran Associate and another goroutine the handshake, that goroutine's
// result cost one more wake-up on first contact's critical path (some
// 50-150 µs on a 2-core VM). Associate's error fails the Dial, as the
// Link's error for the SYN would, but says more (the locators tried, the
// handshake's error). No goroutine outlives the Dial.
func (t *Transport) connectAssociated(ctx context.Context, peer wire.HIT, port int) (tcpip.Endpoint, *waiter.Queue, error) {
	if t.cfg.Associate == nil || t.live(peer) {
		return t.connect(ctx, peer, port, nil)
	}
	ctx, cancel := context.WithCancel(ctx)
	a := &association{ch: make(chan error, 1)}
	go func() { a.ch <- t.cfg.Associate(ctx, peer) }()
	defer func() {
		cancel()
		a.wait() // at once after a handshake: it came through the association
	}()
	return t.connect(ctx, peer, port, a)
}

// association is the result of a Dial's Config.Associate, which the Dial
// receives once: in its wait for the SYN-ACK (ready), or after it. The
// nil *association is a Dial without one.
type association struct {
	ch       chan error
	received bool
	err      error
}

// ready is the channel that delivers the result, or nil (never ready)
// once it was received; pass what it delivers to got.
func (a *association) ready() <-chan error {
	if a == nil || a.received {
		return nil
	}
	return a.ch
}

func (a *association) got(err error) { a.received, a.err = true, err }

// wait returns the result, receiving it if need be.
func (a *association) wait() error {
	if a == nil {
		return nil
	}
	if !a.received {
		a.got(<-a.ch)
	}
	return a.err
}

// or is the error of a Dial that failed with err: Associate's own error
// if it has one, because it says more (the locators tried, and a
// handshake timeout at the context's deadline rather than the bare
// deadline). Associate watches the same context and the same base
// exchange, so it returns as soon.
func (a *association) or(err error) error {
	if aerr := a.wait(); aerr != nil {
		return aerr
	}
	return err
}

// live reports whether the Link says its association with peer can carry
// data; false if it cannot tell.
func (t *Transport) live(peer wire.HIT) bool {
	l, ok := t.link.(liveLink)
	return ok && l.Live(peer)
}

// liveLink is a Link that reports whether its association with a peer
// can carry data (hipnet's adapter of the overlay's Stack does).
type liveLink interface {
	Live(hit wire.HIT) bool
}

// peerLink is a Link that reports on its associations, their
// generations and which of them the peer ended with CLOSE (hipnet's
// adapter of the overlay's Stack does): a Dial then fails as soon as the
// peer ends the association, and a connection as soon as the peer ends
// the one it rides (peerleft.go).
type peerLink interface {
	WatchAssociation(hit wire.HIT) (w overlay.AssocWatch, changed <-chan struct{})
}

// leaveWatch is a Dial's watch on the association with its peer. Without
// it, a SYN the peer never answered (lost, or come as the peer was
// closing) would be retransmitted after the peer's CLOSE, start a base
// exchange with a host that is gone, and hold the Dial until its context
// ends. It reports the peer's CLOSE of the association live when the
// Dial began or of a later one (from), never of an association before
// it, whose CLOSED record the Dial's own exchange replaces. The nil
// *leaveWatch watches nothing.
type leaveWatch struct {
	l       peerLink
	peer    wire.HIT
	from    uint64
	changed <-chan struct{}
}

func (t *Transport) watchLeave(peer wire.HIT) *leaveWatch {
	l, ok := t.link.(peerLink)
	if !ok {
		return nil
	}
	w, changed := l.WatchAssociation(peer)
	from := w.Gen
	if !w.Live {
		from++ // generations only grow: the next association's is greater
	}
	return &leaveWatch{l: l, peer: peer, from: from, changed: changed}
}

// left looks at the association again (and watches for its next change)
// and reports whether the peer ended it.
func (w *leaveWatch) left() bool {
	a, changed := w.l.WatchAssociation(w.peer)
	w.changed = changed
	return a.LeftSince(w.from)
}

func (w *leaveWatch) change() <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.changed
}

// connect creates an endpoint and runs TCP's handshake with port on peer.
// Associate's result, if a is not nil, fails the handshake if it is an
// error.
func (t *Transport) connect(ctx context.Context, peer wire.HIT, port int, a *association) (tcpip.Endpoint, *waiter.Queue, error) {
	wq := new(waiter.Queue)
	ep, terr := t.stack.NewEndpoint(tcp.ProtocolNumber, ipv6.ProtocolNumber, wq)
	if terr != nil {
		return nil, nil, mapError(terr)
	}
	t.setOptions(ep)

	// Register before Connect, which sends the SYN at once: netstack
	// notifies when the handshake ends either way, and the Link may
	// fail the SYN inside Connect.
	entry, notify := waiter.NewChannelEntry(waiter.WritableEvents | waiter.EventHUp | waiter.EventErr)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	failed := t.watchDial(peer)
	defer t.unwatchDial(peer, failed)

	leave := t.watchLeave(peer)
	terr = ep.Connect(tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom16(peer), Port: uint16(port)})
	if err := t.awaitHandshake(ctx, ep, terr, notify, failed, a, leave); err != nil {
		ep.Close()
		return nil, nil, err
	}
	return ep, wq, nil
}

// awaitHandshake waits until the handshake Connect started (terr is
// ErrConnectStarted) ends, and says how. It gives up when ctx ends, the
// Transport closes, the Link fails the peer or the peer ends the
// association (leave).
func (t *Transport) awaitHandshake(ctx context.Context, ep tcpip.Endpoint, terr tcpip.Error, notify <-chan struct{}, failed <-chan error, a *association, leave *leaveWatch) error {
	if _, started := terr.(*tcpip.ErrConnectStarted); !started && terr != nil {
		return mapError(terr)
	}
	for connecting(ep) {
		select {
		case err := <-a.ready():
			if a.got(err); err != nil {
				return err
			}
		case <-leave.change():
			if leave.left() {
				return a.or(errPeerLeft)
			}
		case <-notify:
		case <-ctx.Done():
			return a.or(ctx.Err())
		case <-t.done:
			return errClosed
		case err := <-failed:
			return a.or(err)
		}
	}
	switch tcp.EndpointState(ep.State()) {
	case tcp.StateError, tcp.StateClose:
		// Refused (RST), timed out, or aborted.
		if terr := ep.LastError(); terr != nil {
			return mapError(terr)
		}
		return syscall.ECONNABORTED
	}
	return nil
}

// connecting reports whether ep's handshake is still running.
func connecting(ep tcpip.Endpoint) bool {
	switch tcp.EndpointState(ep.State()) {
	case tcp.StateConnecting, tcp.StateSynSent, tcp.StateSynRecv:
		return true
	}
	return false
}

// setOptions sets the per-connection options that are not stack-wide:
// keep-alives.
func (t *Transport) setOptions(ep tcpip.Endpoint) {
	if t.cfg.KeepAlive < 0 {
		return
	}
	idle := tcpip.KeepaliveIdleOption(t.cfg.KeepAlive)
	interval := tcpip.KeepaliveIntervalOption(t.cfg.KeepAlive)
	_ = ep.SetSockOpt(&idle)
	_ = ep.SetSockOpt(&interval)
	_ = ep.SetSockOptInt(tcpip.KeepaliveCountOption, keepAliveCount)
	ep.SocketOptions().SetKeepAlive(true)
}

// watchDial registers a Dial to peer waiting for its handshake; the
// channel receives the Link error that makes the peer unreachable.
func (t *Transport) watchDial(peer wire.HIT) chan error {
	ch := make(chan error, 1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dials[peer] == nil {
		t.dials[peer] = make(map[chan error]struct{})
	}
	t.dials[peer][ch] = struct{}{}
	return ch
}

func (t *Transport) unwatchDial(peer wire.HIT, ch chan error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.dials[peer], ch)
	if len(t.dials[peer]) == 0 {
		delete(t.dials, peer)
	}
}

// linkFailed is told of every WriteSegment error. One that says the peer
// cannot be reached at all fails the Dials to it; any other is a lost
// segment, which TCP retransmits.
func (t *Transport) linkFailed(dst wire.HIT, err error) {
	t.log.Debug("netstack: WriteSegment failed", "peer", dst, "err", err)
	if !unreachable(err) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for ch := range t.dials[dst] {
		select {
		case ch <- err:
		default:
		}
	}
}

// unreachable reports whether a Link error means that no segment will
// reach the peer, however often TCP retransmits.
func unreachable(err error) bool {
	for _, target := range []error{overlay.ErrUnknownPeer, overlay.ErrNotAuthorized,
		overlay.ErrHandshakeFailed, overlay.ErrHandshakeTimeout, overlay.ErrClosed} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// Listen accepts TCP connections to port on the local HIT; port 0 picks
// a free ephemeral port (Addr tells which). A port that is taken fails
// with an error wrapping overlay.ErrPortInUse.
func (t *Transport) Listen(port int) (net.Listener, error) {
	laddr := &overlay.Addr{HIT: t.local, Port: port}
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: "hip", Addr: laddr, Err: err}
	}
	if port < 0 || port > 0xFFFF {
		return nil, opErr(fmt.Errorf("%w %d", errBadPort, port))
	}
	if t.isClosed() {
		return nil, opErr(errClosed)
	}
	l, err := t.listen(port)
	if err != nil {
		return nil, opErr(err)
	}
	return l, nil
}

// Close resets every connection still open (RST, so that its peer learns
// at once, as a QUIC stream of package streams is reset when its node
// closes) and closes every listener; it lets the connections the
// application closed before deliver what they still hold, for at most
// closeLinger, as a kernel's TCP does after a process exits; then it
// resets what is left, stops netstack's goroutines and waits for them,
// and unregisters from the Link. A second Close returns errClosed.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return errClosed
	}
	t.closed = true
	close(t.done)
	conns := make([]*conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	ls := make([]*listener, 0, len(t.listeners))
	for l := range t.listeners {
		ls = append(ls, l)
	}
	t.mu.Unlock()

	for _, l := range ls {
		l.shut()
	}
	for _, c := range conns {
		c.shut()
		c.reset()
	}
	t.linger(closeLinger)
	t.link.HandleSegments(protoTCP, nil)
	if rl, ok := t.link.(reopenLink); ok {
		rl.SetSegmentReopens(protoTCP, nil)
	}
	t.ep.detach()
	t.ep.acks.close()
	// Reset every endpoint still registered (RST to its peer), then
	// stop the TCP processors and remove the interface, and wait for
	// both.
	t.stack.Close()
	for _, c := range conns {
		c.release()
	}
	t.stack.Wait()
	t.wg.Wait() // the watches of peers, which end with t.done
	return nil
}

// closeLinger bounds how long Close lets closed connections deliver.
const closeLinger = time.Second

// linger waits, at most limit, until no endpoint has a FIN of ours (and
// so data before it) that the peer has not acknowledged.
func (t *Transport) linger(limit time.Duration) {
	end := time.Now().Add(limit)
	for time.Now().Before(end) && t.sending() {
		time.Sleep(5 * time.Millisecond)
	}
}

// sending reports whether a connection the application closed has data
// or its FIN not yet acknowledged: it stays ESTABLISHED (or CLOSE-WAIT)
// until its FIN leaves after the data queued before it. (Close reset the
// ones still open.)
func (t *Transport) sending() bool {
	for _, e := range t.stack.RegisteredEndpoints() {
		ep, ok := e.(interface{ State() uint32 })
		if !ok {
			continue
		}
		switch tcp.EndpointState(ep.State()) {
		case tcp.StateEstablished, tcp.StateSynRecv, tcp.StateCloseWait,
			tcp.StateFinWait1, tcp.StateClosing, tcp.StateLastAck:
			return true
		}
	}
	return false
}

func (t *Transport) isClosed() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// track records c (or l) so that Close can end it; it fails once the
// Transport is closed.
func (t *Transport) track(c *conn) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errClosed
	}
	t.conns[c] = struct{}{}
	t.watchPeerOf(c)
	return nil
}

func (t *Transport) forget(c *conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.unwatchPeerOf(c)
	t.mu.Unlock()
}

func (t *Transport) trackListener(l *listener) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errClosed
	}
	t.listeners[l] = struct{}{}
	return nil
}

func (t *Transport) forgetListener(l *listener) {
	t.mu.Lock()
	delete(t.listeners, l)
	t.mu.Unlock()
}
