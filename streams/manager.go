package streams

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/ratelimit"
	"hipnet.dev/overlay"
)

// Connection close codes (QUIC application error codes of CONNECTION_CLOSE).
const (
	connCodeClosed  quic.ApplicationErrorCode = 0 // Manager.Close
	connCodeRetired quic.ApplicationErrorCode = 1 // a duplicate connection, retired (see addConn)
	connCodeIdle    quic.ApplicationErrorCode = 2 // no streams for idleTimeout
	connCodeGone    quic.ApplicationErrorCode = 3 // the HIP association ended (never reaches the peer)
	connCodeLeft    quic.ApplicationErrorCode = 4 // the peer ended the HIP association with CLOSE (never reaches it)
)

// simultaneousOpen is how far apart the establishment of two connections
// with the same peer may be for them to count as a simultaneous open,
// settled by the initiators' HITs. Beyond it the newer connection wins: the
// older one may be dead without our knowing yet (the peer restarted).
const simultaneousOpen = 5 * time.Second

// DefaultIdleTimeout is how long a connection stays up without streams.
// QUIC keep-alives hold a connection (and so the HIP association under it)
// open while streams use it; once the last stream is closed the
// connection goes after this time, and the association can expire.
const DefaultIdleTimeout = 30 * time.Second

// dialTimeout bounds one QUIC handshake (and the Associate call before
// it) that Dials wait for. Each Dial also honours its own context.
const dialTimeout = 30 * time.Second

// Manager runs the QUIC connections of one node: at most one in use per
// peer, carrying every stream to and from that peer. It is safe for
// concurrent use.
type Manager struct {
	local    wire.HIT
	cfg      Config
	log      *slog.Logger
	peerPort int
	idle     time.Duration // DefaultIdleTimeout; tests shorten it
	qconf    *quic.Config
	// fixedSize: Config.QUIC set the packet size; otherwise each
	// connection takes its path's (pmtu.go).
	fixedSize bool
	cert      tls.Certificate
	// placeholder is the client certificate of the server's PSK
	// sessions, made on first use (newPlaceholder).
	placeholder func() (placeholderCert, error)
	certs       certCache

	pc    packetConn
	assoc associations // nil: pc does not report on associations
	tr    *quic.Transport
	ql    *quic.EarlyListener // early.go: streams before the client's Finished

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the Manager starts
	// draining counts the closed streams waiting for their peers
	// (drain.go); under mu.
	draining int

	mu        sync.Mutex
	closed    bool
	peers     map[wire.HIT]*peerConns
	badPSK    map[wire.HIT][sha256.Size]byte // notePSKRejected
	conns     map[*qconn]struct{}
	inbound   map[wire.HIT]int          // connections each peer dialed, handshaking or up (limits.go)
	attempts  ratelimit.Table[wire.HIT] // each peer's connection attempts (limits.go)
	listeners map[int]*listener
	nextPort  int // next ephemeral port to try
}

// associations is what the Manager uses of a PacketConn that knows the HIP
// associations under it, as *overlay.InnerConn does. When pc offers it, New
// turns the PacketConn's auto-connect off and every connection is closed
// as soon as the association with its peer ends (watchAssociation).
type associations interface {
	// WatchAssociation reports whether the association with hit can carry
	// data and which it is (its generation), and returns a channel closed
	// when that may have changed.
	WatchAssociation(hit wire.HIT) (w overlay.AssocWatch, changed <-chan struct{})
	// Live is WatchAssociation's answer alone: a read, with no channel
	// and no write lock, for the check every Dial makes.
	Live(hit wire.HIT) bool
	// SetAutoConnect(false) makes a write to a peer without an
	// association fail instead of starting a base exchange.
	SetAutoConnect(on bool)
}

// peerCloses is what the Manager uses of an associations that can also
// tell an association the peer ended (its CLOSE) from one that failed or
// was lost, as *overlay.InnerConn can: the connection then closes with
// connCodeLeft, and a stream that fails meanwhile with another error
// fails with overlay.ErrPeerLeft (whyEnded); no dial retries either (retryable).
type peerCloses interface {
	ClosedByPeer(hit wire.HIT) bool
}

// peerConns is the connection state for one peer: the connection new
// streams go on, and the dial in progress, shared by the Dials waiting
// for it.
type peerConns struct {
	cur  *qconn
	dial *dialCall
}

type dialCall struct {
	done chan struct{}
	err  error
}

// qconn is one QUIC connection with its bookkeeping (guarded by
// Manager.mu).
type qconn struct {
	c           *quic.Conn
	peer        wire.HIT
	initiator   wire.HIT // the HIT of the side that dialed it
	established time.Time
	active      int  // streams (and Dials about to open one) on it
	retired     bool // no new streams; close when active drops to 0
	closing     bool
	failed      bool        // a stream on it saw the connection fail (failConn)
	gone        bool        // closed and forgotten (serveConn returned)
	inbound     bool        // counted in Manager.inbound (limits.go)
	idleTimer   *time.Timer // armed while active is 0
	idleGen     uint64      // which arming of idleTimer is current
}

// alive reports whether qc may carry new streams; m.mu is held.
func (qc *qconn) alive() bool { return !qc.failed && qc.c.Context().Err() == nil }

// failConn marks qc failed after one of its streams saw the connection's
// error err, which retryable allowed. quic-go fails the streams before it
// cancels the connection's context, and a retry in that window must not
// get qc again from conn. A rejection of 0-RTT is the stream's, not the
// connection's: qc carries the retry once its handshake is done
// (openStream). A rejection of our PSK is noted, so that the retry's
// dial uses certificates.
func (m *Manager) failConn(qc *qconn, err error) {
	if errors.Is(err, quic.Err0RTTRejected) {
		return
	}
	if pskRejected(err) {
		m.notePSKRejected(qc.peer, err)
	}
	m.mu.Lock()
	qc.failed = true
	m.mu.Unlock()
}

// New starts a Manager on pc, the inner UDP endpoint reserved for streams:
// ReadFrom returns an *overlay.Addr naming the peer HIT the ESP security
// association authenticated, and WriteTo takes one. One quic.Transport
// serves pc as both client and server. The Manager owns pc from now on
// and closes it in Close.
//
// If pc reports on the associations under it (WatchAssociation and
// SetAutoConnect, as *overlay.InnerConn has), the connections with a peer
// are closed, and their state freed, the moment the association with that
// peer ends (CLOSE, failure, expiry), and a write never starts a base
// exchange: a Dial runs Config.Associate first when the association cannot
// carry data.
func New(pc net.PacketConn, localHIT wire.HIT, cfg Config) (*Manager, error) {
	if pc == nil {
		return nil, errors.New("streams: nil PacketConn")
	}
	if cfg.Identity == nil {
		return nil, errors.New("streams: Config.Identity is required")
	}
	if cfg.PeerIdentity == nil {
		return nil, errors.New("streams: Config.PeerIdentity is required")
	}
	if h := wire.HIT(cfg.Identity.HIT()); h != localHIT {
		return nil, fmt.Errorf("streams: local HIT %s is not the HIT of the identity (%s)", localHIT, h)
	}
	if cfg.PeerPort < 0 || cfg.PeerPort > 0xFFFF {
		return nil, fmt.Errorf("streams: bad PeerPort %d", cfg.PeerPort)
	}
	cert, err := newCertificate(cfg.Identity)
	if err != nil {
		return nil, err
	}
	resetKey, err := statelessResetKey(cfg.Identity)
	if err != nil {
		return nil, err
	}
	start, err := rand.Int(rand.Reader, big.NewInt(ephemeralHigh-ephemeralLow+1))
	if err != nil {
		return nil, err
	}

	m := &Manager{
		local:       localHIT,
		cfg:         cfg,
		log:         cfg.Logger,
		peerPort:    cfg.PeerPort,
		idle:        DefaultIdleTimeout,
		qconf:       cfg.quicConfig(),
		fixedSize:   cfg.QUIC != nil && cfg.QUIC.InitialPacketSize != 0,
		cert:        cert,
		placeholder: newPlaceholder(cfg.Identity),
		pc:          newPacketConn(pc),
		peers:       make(map[wire.HIT]*peerConns),
		badPSK:      make(map[wire.HIT][sha256.Size]byte),
		conns:       make(map[*qconn]struct{}),
		attempts:    ratelimit.NewTable[wire.HIT](attemptBurst, attemptRate, attemptsKept),
		listeners:   make(map[int]*listener),
		nextPort:    ephemeralLow + int(start.Int64()),
	}
	if a, ok := pc.(associations); ok {
		// A connection must not outlive its association, nor bring it
		// back: its packets after a CLOSE (acknowledgements, keep-alives,
		// its own CONNECTION_CLOSE) would start a base exchange with the
		// peer that just left. Dials associate first (handshake).
		a.SetAutoConnect(false)
		m.assoc = a
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.peerPort == 0 {
		m.peerPort = DefaultPort
		if a, ok := pc.LocalAddr().(*overlay.Addr); ok && a != nil && a.Port != 0 {
			m.peerPort = a.Port
		}
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	// Connection IDs of cidLen octets, each usable only by the HIT it was
	// given to, and no more than one per connection (cids.go).
	m.pc.cids.setLifetimes(m.qconf)
	m.tr = &quic.Transport{
		Conn:                  m.pc,
		StatelessResetKey:     resetKey,
		ConnectionIDGenerator: &cidGenerator{t: m.pc.cids},
	}
	lconf := m.qconf.Clone()
	lconf.GetConfigForClient = m.configForClient
	m.ql, err = m.tr.ListenEarly(m.serverTLS(), lconf)
	if err != nil {
		m.cancel()
		m.tr.Close()
		return nil, fmt.Errorf("streams: %w", err)
	}
	m.wg.Add(1)
	go m.acceptConns()
	return m, nil
}

// statelessResetKey derives the QUIC stateless reset key from the host
// identity, so that it survives a restart: when a peer still holds a
// connection to the previous incarnation of this node, the new one
// answers its packets with a stateless reset (RFC 9000 §10.3) and the
// peer drops the connection at once instead of after its idle timeout.
// Only on connections this node accepted: on one it dialed, its
// connection ID came with no token (cids.go).
func statelessResetKey(id *hostid.PrivateKey) (*quic.StatelessResetKey, error) {
	secret, err := hostid.MarshalPEM(id)
	if errors.Is(err, hostid.ErrNotExportable) {
		// A key in a TPM, secure element or KMS (a crypto.Signer) gives
		// nothing stable to derive from: a random key, so that after a
		// restart the peers' old connections time out instead of being
		// reset at once.
		var k quic.StatelessResetKey
		if _, err := rand.Read(k[:]); err != nil {
			return nil, err
		}
		return &k, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := hkdf.Key(sha256.New, secret, nil, "hipnet streams stateless reset key", 32)
	if err != nil {
		return nil, err
	}
	var k quic.StatelessResetKey
	copy(k[:], b)
	return &k, nil
}

// LocalHIT returns the HIT the Manager was started with.
func (m *Manager) LocalHIT() wire.HIT { return m.local }

// ConnectionCount returns the number of open QUIC connections, counting
// a duplicate from a simultaneous open until it is retired.
func (m *Manager) ConnectionCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.conns)
}

// Close closes every listener and connection (streams still open on
// them fail), the QUIC transport and the PacketConn, and waits for the
// Manager's goroutines to return. It first lets the connections send
// what they hold (linger, at most closeLinger), so that what was written
// to streams the application closed arrives. Later calls return an error
// wrapping overlay.ErrClosed.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errClosed
	}
	m.closed = true
	ls := make([]*listener, 0, len(m.listeners))
	for _, l := range m.listeners {
		ls = append(ls, l)
	}
	conns := make([]*qconn, 0, len(m.conns))
	for qc := range m.conns {
		conns = append(conns, qc)
	}
	m.mu.Unlock()

	for _, l := range ls {
		l.close()
	}
	m.cancel()
	linger(conns, closeLinger, m.busyDraining)
	for _, qc := range conns {
		qc.c.CloseWithError(connCodeClosed, "closed")
	}
	m.ql.Close()
	m.tr.Close()
	err := m.pc.Close()
	m.wg.Wait()
	return err
}

// acceptConns registers the connections peers dial to us. The early
// listener gives them before the client's Finished: one that accepted
// 0-RTT (its client proved the PSK with the binder, early.go) is
// registered at once, so that its early streams reach their listeners;
// any other only once its handshake completes (acceptLater), so that a
// client whose certificate fails never displaces a live connection with
// the same peer (addConn).
func (m *Manager) acceptConns() {
	defer m.wg.Done()
	for {
		c, err := m.ql.Accept(m.ctx)
		if err != nil {
			return
		}
		peer, ok := remoteHIT(c.RemoteAddr())
		if !ok { // serverTLS refuses such handshakes; belt and braces
			c.CloseWithError(connCodeClosed, "remote address is not a HIT")
			continue
		}
		qc := &qconn{c: c, peer: peer, initiator: peer, established: time.Now()}
		m.mu.Lock()
		ok = m.admitInbound(qc)
		m.mu.Unlock()
		if !ok {
			m.log.Debug("streams: connection refused", "peer", peer, "err", errTooManyConns)
			c.CloseWithError(connCodeClosed, "too many connections")
			continue
		}
		if c.ConnectionState().Used0RTT || handshakeDone(c) {
			m.addConn(qc)
			continue
		}
		m.wg.Add(1)
		go m.acceptLater(qc)
	}
}

// acceptLater registers qc once its handshake completes; a handshake that
// fails closes it unregistered.
func (m *Manager) acceptLater(qc *qconn) {
	defer m.wg.Done()
	select {
	case <-qc.c.HandshakeComplete():
		qc.established = time.Now()
		m.addConn(qc)
	case <-qc.c.Context().Done():
		m.forgetInbound(qc)
	case <-m.ctx.Done():
		qc.c.CloseWithError(connCodeClosed, "closed")
		m.forgetInbound(qc)
	}
}

// forgetInbound uncounts qc, a connection that never came up.
func (m *Manager) forgetInbound(qc *qconn) {
	m.mu.Lock()
	m.doneInbound(qc)
	m.mu.Unlock()
}

// addConn registers a new connection and serves its streams. If another
// live connection with the peer exists, one of the two is retired: it gets
// no new streams and is closed when its last one ends. Both sides must
// retire the same one, so the rule looks only at what both know: within
// simultaneousOpen of each other the connection dialed by the smaller HIT
// wins; otherwise the newer one does (the older may be dead without our
// knowing yet). A Dial whose stream meets a retired connection closing
// retries on the winner.
func (m *Manager) addConn(qc *qconn) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		qc.c.CloseWithError(connCodeClosed, "closed")
		return
	}
	closeNow := m.addConnLocked(qc)
	m.mu.Unlock()
	m.startConn(qc, closeNow)
}

// addConnLocked registers qc; it returns the connection to close now, if
// any. m.mu is held and the Manager is open. The caller then calls
// startConn.
func (m *Manager) addConnLocked(qc *qconn) (closeNow *qconn) {
	m.conns[qc] = struct{}{}
	p := m.peer(qc.peer)
	switch old := p.cur; {
	case old == nil || !old.alive():
		p.cur = qc
	case preferred(qc, old):
		p.cur = qc
		closeNow = m.retire(old)
	default:
		closeNow = m.retire(qc)
	}
	if closeNow != qc {
		m.armIdle(qc)
	}
	m.wg.Add(1) // serveConn
	if m.assoc != nil {
		m.wg.Add(1) // watchAssociation
	}
	return closeNow
}

func (m *Manager) startConn(qc, closeNow *qconn) {
	m.certs.drop(qc.peer) // the handshake is over (synthetic.go)
	m.log.Debug("streams: connection up", "peer", qc.peer, "initiator", qc.initiator, "retired", closeNow == qc)
	if closeNow != nil {
		m.closeRetired(closeNow)
	}
	go m.serveConn(qc)
	if m.assoc != nil {
		go m.watchAssociation(qc)
	}
}

// watchAssociation closes qc as soon as the association with its peer
// ends. Waiting for QUIC to notice (the idle timeout, DefaultMaxIdleTimeout)
// would hold the connection's state, some 40 KiB with its goroutines, for
// half a minute after every CLOSE: at a few hundred peers a second, which a
// host with valid puzzle solutions can sustain, hundreds of megabytes. Its
// streams fail at once; their packets could not leave anyway, the SAs are
// gone. The CONNECTION_CLOSE has no SA to go on either, which is as well:
// the peer closed the association, so it knows.
//
// A connection can come up before its association is live: on the
// Initiator, between I2 and R2, the Responder (already in R2-SENT) may
// open one with 0-RTT data, which arrives on the inbound SA installed with
// the I2 and is keyed from the secret exported then. That association has
// not ended, it is finishing; closing the connection then lost what its
// first streams carried (a chat's first lines, when both ends dial each
// other at once). So until the association has been seen live, its
// secret still being there is enough; once seen live, or with the secret
// gone (the exchange failed: overlay's removeSAs drops it), not live is
// ended, and so is another association (generation) than the one seen:
// the connection's keys came from that one's secret, and it ended even if
// the next came up before the watch could look.
func (m *Manager) watchAssociation(qc *qconn) {
	defer m.wg.Done()
	done := qc.c.Context().Done()
	var gen uint64 // the association's, once seen live
	var w overlay.AssocWatch
	for {
		var changed <-chan struct{}
		w, changed = m.assoc.WatchAssociation(qc.peer)
		if gen == 0 && w.Live {
			gen = w.Gen
		}
		if gen != 0 && (!w.Live || w.Gen != gen) {
			break
		}
		if _, keyed := m.secretFor(qc.peer); gen == 0 && !keyed {
			break
		}
		select {
		case <-changed:
		case <-done:
			return
		}
	}
	m.mu.Lock()
	qc.closing = true // the idle timer and closeRetired leave it alone
	m.mu.Unlock()
	code, why := connCodeGone, "association ended"
	left := gen != 0 && w.LeftSince(gen)
	if pc, ok := m.assoc.(peerCloses); ok && gen == 0 && pc.ClosedByPeer(qc.peer) {
		left = true // an exchange that failed: the state is all there is
	}
	if left {
		code, why = connCodeLeft, "peer closed the association"
	}
	m.log.Debug("streams: "+why+", closing connection", "peer", qc.peer)
	qc.c.CloseWithError(code, why)
}

// closeLinger bounds how long Close lets connections finish sending.
const closeLinger = time.Second

// lingerQuiet is the least time a connection must send nothing for
// linger to take it as done.
const lingerQuiet = 10 * time.Millisecond

// linger waits, at most limit, until none of conns has sent anything for
// two smoothed round trips (at least lingerQuiet). A QUIC
// CONNECTION_CLOSE discards what is still in flight, and what the
// application wrote before it closed a stream (or the node) must still
// arrive, as a kernel's TCP delivers a closed socket's data after the
// process is gone. quic-go does not say when a stream's data is
// acknowledged; a connection that has sent nothing, retransmission
// included, for two round trips has nothing left unacknowledged that its
// loss recovery still sends, or has lost its path. A peer still sending
// to us keeps our ACKs going: limit bounds that wait. It also waits while
// busy reports a closed stream still waiting for its peer to read what it
// was sent (drain.go).
func linger(conns []*qconn, limit time.Duration, busy func() bool) {
	if len(conns) == 0 {
		return
	}
	end := time.Now().Add(limit)
	sent := make([]uint64, len(conns))
	quiet := func() (bool, time.Duration) {
		same, wait := true, lingerQuiet
		for i, qc := range conns {
			st := qc.c.ConnectionStats()
			if st.BytesSent != sent[i] {
				sent[i], same = st.BytesSent, false
			}
			wait = max(wait, 2*st.SmoothedRTT)
		}
		return same, wait
	}
	_, wait := quiet()
	for time.Now().Add(wait).Before(end) {
		time.Sleep(wait)
		var same bool
		if same, wait = quiet(); same && !busy() {
			return
		}
	}
	if d := time.Until(end); d > 0 {
		time.Sleep(d)
	}
}

// retiredGrace is how long a retired connection without streams stays
// open before it is closed. A QUIC CONNECTION_CLOSE discards what is
// still in flight, so closing the moment the last stream ends could cut
// off that stream's final data (the echo of a request, a FIN) before the
// peer has it; the grace lets loss recovery deliver it.
const retiredGrace = time.Second

// closeRetired closes qc after retiredGrace unless a stream took it again
// in the meantime: we open none on a retired connection, but the peer may
// (one it opened just before it retired, or one it opens on purpose). Then
// qc is no longer closing, and the release of its last stream schedules
// the close again; were it left closing, nothing would ever close it (the
// idle timer spares a closing connection), and a peer could keep any
// number of retired connections, and their association, open for ever.
func (m *Manager) closeRetired(qc *qconn) {
	time.AfterFunc(retiredGrace, func() {
		m.mu.Lock()
		ok := qc.retired && qc.active == 0
		if !ok && qc.retired && !qc.gone {
			qc.closing = false
		}
		m.mu.Unlock()
		if ok {
			qc.c.CloseWithError(connCodeRetired, "duplicate connection")
		}
	})
}

// preferred reports whether the new connection a replaces the existing b.
func preferred(a, b *qconn) bool {
	if a.established.Sub(b.established) > simultaneousOpen || a.initiator == b.initiator {
		return true
	}
	return a.initiator.Compare(b.initiator) < 0
}

// retire marks qc retired; it returns qc if it must be closed now.
// m.mu is held.
func (m *Manager) retire(qc *qconn) *qconn {
	qc.retired = true
	if qc.active == 0 && !qc.closing {
		qc.closing = true
		return qc
	}
	return nil
}

// release ends one stream's (or one Dial's) hold on qc.
func (m *Manager) release(qc *qconn) {
	m.mu.Lock()
	qc.active--
	closeNow := qc.retired && qc.active == 0 && !qc.closing
	if closeNow {
		qc.closing = true
	} else if qc.active == 0 {
		m.armIdle(qc)
	}
	m.mu.Unlock()
	if closeNow {
		m.closeRetired(qc)
	}
}

// armIdle (re)starts qc's idle timer; m.mu is held and qc.active is 0.
// A timer that fires after a stream came and went finds another idleGen.
// A connection already gone gets none: its last stream may be closed after
// the connection, and the timer would hold the dead connection's state
// for the idle timeout.
func (m *Manager) armIdle(qc *qconn) {
	if qc.gone {
		return
	}
	qc.idleGen++
	gen := qc.idleGen
	if qc.idleTimer != nil {
		qc.idleTimer.Stop()
	}
	qc.idleTimer = time.AfterFunc(m.idle, func() {
		m.mu.Lock()
		expired := !m.closed && !qc.closing && qc.active == 0 && qc.idleGen == gen
		if expired {
			qc.closing = true
		}
		m.mu.Unlock()
		if expired {
			m.log.Debug("streams: closing idle connection", "peer", qc.peer)
			qc.c.CloseWithError(connCodeIdle, "idle")
		}
	})
}

// peer returns the state for hit, creating it. m.mu is held.
func (m *Manager) peer(hit wire.HIT) *peerConns {
	p := m.peers[hit]
	if p == nil {
		p = &peerConns{}
		m.peers[hit] = p
	}
	return p
}

// serveConn accepts the streams the peer opens on qc until qc closes,
// then forgets qc.
func (m *Manager) serveConn(qc *qconn) {
	defer m.wg.Done()
	for {
		st, err := qc.c.AcceptStream(context.Background())
		if errors.Is(err, quic.Err0RTTRejected) {
			// Our dial's 0-RTT was rejected (early.go); the connection
			// goes on once its handshake is done, or fails with it.
			if _, err = qc.c.NextConnection(context.Background()); err == nil {
				continue
			}
		}
		if err != nil {
			m.log.Debug("streams: connection down", "peer", qc.peer, "err", err)
			if pskRejected(err) {
				// Before qc leaves peers: conn dials again once it has
				// (noteDeadPSK).
				m.notePSKRejected(qc.peer, err)
			}
			break
		}
		m.mu.Lock()
		qc.active++
		m.wg.Add(1)
		m.mu.Unlock()
		go m.serveStream(qc, st)
	}
	m.mu.Lock()
	delete(m.conns, qc)
	m.doneInbound(qc)
	qc.gone = true
	if qc.idleTimer != nil {
		qc.idleTimer.Stop()
		qc.idleTimer = nil
	}
	if p := m.peers[qc.peer]; p != nil {
		if p.cur == qc {
			p.cur = nil
		}
		if p.cur == nil && p.dial == nil {
			delete(m.peers, qc.peer)
		}
	}
	m.mu.Unlock()
}

// conn returns a live connection to peer with a hold on it (the caller
// must release it), dialing one if there is none; concurrent callers
// share one dial. dialed reports that the connection was not there when
// conn was called.
//
// first, when not nil, is the stream the caller wants to open: if conn
// starts the dial and the dial uses 0-RTT, the dial opens it in the one
// window where that is safe (firstStream), and first.take returns it.
func (m *Manager) conn(ctx context.Context, peer wire.HIT, first *firstStream) (qc *qconn, dialed bool, err error) {
	for waited := 0; ; waited++ {
		m.noteDeadPSK(peer)
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, false, errClosed
		}
		p := m.peer(peer)
		if qc := p.cur; qc != nil && qc.alive() {
			qc.active++
			m.mu.Unlock()
			return qc, dialed, nil
		}
		if waited == 2 {
			m.mu.Unlock()
			return nil, false, fmt.Errorf("streams: connection to %s lost right after the handshake", peer)
		}
		call := p.dial
		if call == nil {
			call = &dialCall{done: make(chan struct{})}
			p.dial = call
			m.wg.Add(1)
			go m.dial(peer, p, call, first)
		}
		m.mu.Unlock()

		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		if call.err != nil {
			return nil, false, call.err
		}
		dialed = true
	}
}

// dial runs one QUIC handshake with peer for the Dials waiting on call.
// It runs on the Manager's context, not on a Dial's: another Dial may be
// waiting for it, and the connection outlives the Dial anyway.
func (m *Manager) dial(peer wire.HIT, p *peerConns, call *dialCall, first *firstStream) {
	defer m.wg.Done()
	ctx, cancel := context.WithTimeout(m.ctx, dialTimeout)
	c, err := m.handshake(ctx, peer, first)
	cancel()

	var qc, closeNow *qconn
	m.mu.Lock()
	if p.dial == call {
		p.dial = nil
	}
	if err == nil {
		if m.closed {
			defer c.CloseWithError(connCodeClosed, "closed")
			err = errClosed
		} else {
			qc = &qconn{c: c, peer: peer, initiator: m.local, established: time.Now()}
			closeNow = m.addConnLocked(qc)
		}
	}
	if err != nil && p.cur == nil && m.peers[peer] == p {
		delete(m.peers, peer)
	}
	call.err = err
	m.mu.Unlock()

	if qc != nil {
		m.startConn(qc, closeNow)
	} else {
		m.log.Debug("streams: dial failed", "peer", peer, "err", err)
	}
	close(call.done)
}

// associate runs Config.Associate when the PacketConn reports no
// association with peer that can carry data: our writes no longer start a
// base exchange (New turns auto-connect off), and the peer's identity may
// outlive the association (a CLOSED one keeps it). Dial calls it with its
// caller's context, before anything else: QUIC's first packet needs the
// association's secret; handshake calls it again for an association that
// ended meanwhile. With Config.AssociateKeyed it returns once the keys
// exist, and reports keyed: the exchange may still be running, and
// whileAssociating watches the rest of it.
func (m *Manager) associate(ctx context.Context, peer wire.HIT) (keyed bool, err error) {
	switch {
	case m.assoc == nil || m.cfg.Associate == nil, m.assoc.Live(peer):
		return false, nil
	case m.cfg.AssociateKeyed != nil:
		return true, m.cfg.AssociateKeyed(ctx, peer)
	}
	return false, m.cfg.Associate(ctx, peer)
}

// whileAssociating is the context of a QUIC handshake started during a
// keyed base exchange (associate): it ends, with Associate's error as its
// cause, if the exchange fails, so that the handshake does not wait out
// its timeout for packets that were discarded. finish takes the
// handshake's error and returns the error the Dial reports: the
// exchange's, when it failed (the handshake may have failed first, on the
// writes the failed exchange refused, or returned early, with 0-RTT),
// else the handshake's.
func (m *Manager) whileAssociating(ctx context.Context, peer wire.HIT) (hctx context.Context, finish func(error) error) {
	hctx, cancel := context.WithCancelCause(ctx)
	done := make(chan error, 1)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		err := m.cfg.Associate(hctx, peer)
		if err != nil {
			cancel(err)
		}
		done <- err
	}()
	return hctx, func(herr error) error {
		if herr == nil {
			// A dial with 0-RTT returns before the handshake, while the
			// exchange may still run (early.go): the connection is the
			// Dial's once the association exists, which is also when its
			// first packets can leave. Associate returns once the
			// exchange ends. Without 0-RTT it has already returned.
			aerr := <-done
			cancel(nil)
			return aerr
		}
		// Associate returns once the exchange ends, which bounds the
		// wait (or at once if hctx is done).
		aerr := <-done
		cancel(nil)
		if aerr != nil && !errors.Is(aerr, context.Canceled) {
			return aerr
		}
		return herr
	}
}

// handshake associates with peer if need be and dials the QUIC connection.
// With first, for a Dial, the dial uses 0-RTT (early.go) and opens first's
// stream before the handshake completes (firstStream).
func (m *Manager) handshake(ctx context.Context, peer wire.HIT, first *firstStream) (*quic.Conn, error) {
	keyed, err := m.associate(ctx, peer)
	if err != nil {
		return nil, err
	}
	finish := func(err error) error { return err }
	if keyed {
		ctx, finish = m.whileAssociating(ctx, peer)
	}
	c, err := m.earlyHandshake(ctx, peer, first)
	if err = finish(err); err != nil && c != nil {
		c.CloseWithError(connCodeGone, "association failed")
		return nil, err
	}
	return c, err
}

// earlyHandshake dials the QUIC connection to peer. With first, and a
// secret that allows 0-RTT (usableSecret), it holds the peer's packets
// back (gates) from before the ClientHello until first's stream exists,
// dialing with 0-RTT: the stream's header follows the ClientHello as
// early data. Without a secret there is no early data to wait for: a
// certificate handshake needs the peer's answer before any stream, and a
// gate held would stall it for gateWait.
func (m *Manager) earlyHandshake(ctx context.Context, peer wire.HIT, first *firstStream) (*quic.Conn, error) {
	if first == nil || m.usableSecret(peer) == nil {
		return m.quicHandshake(ctx, peer, false)
	}
	gt := m.pc.gates.hold(peer)
	defer m.pc.gates.release(peer, gt)
	c, err := m.quicHandshake(ctx, peer, true)
	if err == nil && !handshakeDone(c) && m.pc.gates.claim(gt) {
		m.openFirst(ctx, c, first)
	}
	return c, err
}

// quicHandshake dials the QUIC connection to peer with its authenticated
// identity, running Config.Associate first if PeerIdentity does not know
// it yet (a PacketConn that reports no associations).
func (m *Manager) quicHandshake(ctx context.Context, peer wire.HIT, early bool) (*quic.Conn, error) {
	pub, err := peerKey(m.cfg.PeerIdentity, peer)
	if err != nil && errors.Is(err, overlay.ErrUnknownPeer) && m.cfg.Associate != nil {
		if aerr := m.cfg.Associate(ctx, peer); aerr != nil {
			return nil, aerr
		}
		pub, err = peerKey(m.cfg.PeerIdentity, peer)
	}
	if err != nil {
		return nil, err
	}
	return m.quicDial(ctx, peer, pub, early)
}

// quicDial runs the QUIC handshake with peer, whose authenticated
// identity is pub: with the association's PSK if there is a secret,
// else (or if the server cannot verify our PSK) with certificates.
//
// A server that has no secret simply answers with the certificate
// handshake. One whose secret differs from ours aborts (RFC 8446
// §4.2.11 leaves it no choice: the binder does not verify); the two hosts
// then disagree about the association, and a certificate handshake, bound
// to the HIT as firmly, still connects them. It costs a round trip and
// the signatures, and reveals nothing: the server's abort is an alert.
//
// With a secret and early (a Dial's first stream waits, earlyHandshake)
// the dial uses 0-RTT (early.go) and returns as soon as the ClientHello is
// written, so the server's abort reaches the first stream instead; the
// stream's retry then finds the secret marked (pskFailed) and dials with
// certificates.
func (m *Manager) quicDial(ctx context.Context, peer wire.HIT, pub *hostid.PublicKey, early bool) (*quic.Conn, error) {
	secret := m.usableSecret(peer)
	c, err := m.quicDialTLS(ctx, peer, pub, secret, early)
	if err != nil && secret != nil && pskRejected(err) && ctx.Err() == nil {
		m.notePSKRejected(peer, err)
		c, err = m.quicDialTLS(ctx, peer, pub, nil, false)
	}
	if err != nil && errors.Is(err, quic.ErrTransportClosed) {
		return nil, errClosed
	}
	return c, err
}

func (m *Manager) quicDialTLS(ctx context.Context, peer wire.HIT, pub *hostid.PublicKey, secret []byte, early bool) (*quic.Conn, error) {
	tlsConf, err := m.clientTLS(peer, pub, secret)
	if err != nil {
		return nil, err
	}
	// The address as ReadFrom reports the peer's packets (packetConn).
	addr := m.pc.addrs.udp(overlay.Addr{HIT: peer, Port: m.peerPort})
	if secret != nil && early {
		return m.tr.DialEarly(ctx, addr, tlsConf, m.connConfig(peer))
	}
	return m.tr.Dial(ctx, addr, tlsConf, m.connConfig(peer))
}

// usableSecret is the association's secret for a dial to peer (the PSK,
// and with it 0-RTT), or nil: there is none, or peer rejected it before
// (notePSKRejected).
func (m *Manager) usableSecret(peer wire.HIT) []byte {
	secret, ok := m.secretFor(peer)
	if !ok || m.pskFailed(peer, secret) {
		return nil
	}
	return secret
}

// maxPSKFailures bounds Manager.badPSK; beyond it the marks are forgotten
// (their peers try the PSK once more, and are marked again).
const maxPSKFailures = 1024

// notePSKRejected records that peer could not verify our PSK (err is the
// server's abort, pskRejected): until the association's secret changes,
// dials to peer use certificates.
func (m *Manager) notePSKRejected(peer wire.HIT, err error) {
	secret, ok := m.secretFor(peer)
	if !ok {
		return
	}
	h := sha256.Sum256(secret)
	m.mu.Lock()
	if old, ok := m.badPSK[peer]; ok && old == h {
		m.mu.Unlock()
		return // noted already, by whoever saw the rejection first
	}
	if len(m.badPSK) >= maxPSKFailures {
		clear(m.badPSK)
	}
	m.badPSK[peer] = h
	m.mu.Unlock()
	m.log.Debug("streams: peer rejected our PSK, retrying with certificates", "peer", peer, "err", err)
}

// noteDeadPSK notes a rejection of our PSK that ended peer's current
// connection before any of its streams reported it (failConn). A 0-RTT
// dial returns at once, and on a slow host the server's abort can close
// the connection before conn looks at it: conn would then dial with the
// same PSK again, be refused again, and give up (CI's race pass met it).
// serveConn notes it too, before it forgets the connection, so that one
// of the two has whichever way the race goes. m.mu is not held:
// notePSKRejected asks for the secret.
func (m *Manager) noteDeadPSK(peer wire.HIT) {
	m.mu.Lock()
	var qc *qconn
	if p := m.peers[peer]; p != nil {
		qc = p.cur
	}
	m.mu.Unlock()
	if qc == nil {
		return
	}
	if err := context.Cause(qc.c.Context()); err != nil && pskRejected(err) {
		m.notePSKRejected(peer, err)
	}
}

// pskFailed reports whether peer rejected the PSK of secret before.
func (m *Manager) pskFailed(peer wire.HIT, secret []byte) bool {
	m.mu.Lock()
	h, ok := m.badPSK[peer]
	m.mu.Unlock()
	return ok && h == sha256.Sum256(secret)
}
