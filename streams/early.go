package streams

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"

	"hipnet.dev/handshake/wire"
)

// 0-RTT on the association's PSK (RFC 9001 §4.6, RFC 8446 §2.3).
//
// The synthetic sessions of psk.go allow early data, so a Dial that opens
// a new connection (first contact, or the first after an idle one closed)
// sends the stream's header and the application's first Write in 0-RTT
// packets with the ClientHello, and the server (a quic.EarlyListener)
// hands the stream to its listener before the client's Finished: the
// stream's first bytes and its answer save the handshake's round trip.
//
// Why early data is safe here, where TLS 1.3 warns against it (RFC 8446
// §8, RFC 9001 §9.2):
//
//   - Replay. 0-RTT data can be replayed by whoever records it. Here it
//     travels inside the ESP SA with the peer, whose anti-replay window
//     drops every packet seen before (RFC 4303 §3.4.3; overlay counts
//     them), and no one else can make a packet that opens under that SA.
//     A new association has a new secret, so a ClientHello recorded under
//     an old one names a PSK nobody holds any more.
//   - Authentication. crypto/tls verifies the PSK binder (RFC 8446
//     §4.2.11.2) before it derives the early keys; only then is early
//     data read. The PSK exists only for the association with the HIT the
//     ESP SA authenticated (pskServer.unwrap), so early data comes from
//     exactly that peer, as 1-RTT data does. VerifyConnection runs later,
//     with the client's Finished, and finds the same session.
//   - Forward secrecy. Early data is protected by the PSK alone, without
//     the ephemeral key share: someone who later learns the association's keys
//     could read the stream's first bytes. But those bytes were inside ESP
//     under the same association's keys anyway, so QUIC's 0-RTT adds no
//     exposure that the SA did not already have.
//
// A session allowing early data must say which QUIC transport parameters
// the client may assume of the server until its real ones arrive (RFC
// 9000 §7.4.1): quic-go keeps them in the session's Extra, in its own
// encoding, on both sides. A real session remembers what the server sent
// last time; a synthetic one has no last time, so both sides use the same
// modest limits (earlyLimits), which every hipnet server exceeds: one
// stream, a few packets of data. The server checks that its current
// parameters still allow them (quic-go's ValidFor0RTT) and the client,
// once the handshake is done, that the server's real ones do (its
// ValidForUpdate); the real, larger limits apply from then on.
//
// If the peer rejects early data (an older hipnet, a server whose QUIC
// configuration allows less than earlyLimits, or a server that chose
// another cipher suite than the session's), quic-go fails the streams
// opened in 0-RTT with quic.Err0RTTRejected: the server never saw them, so
// Dial and the pending answer (answer.go) open the stream again on the
// same connection once its handshake is done (openStream), and resend a
// first Write that waits for the answer. If the peer rejects the PSK
// itself, it aborts the handshake before it reads early data, and the
// next dial uses certificates (Manager.pskFailed).
//
// quic-go's encoding is internal to it, and it does change: v0.66 put the
// QUIC version into the server's ticket and moved its revision to 6, and
// TestEarlyData failed until earlyServerExtra followed. Its parsers refuse
// what they do not know, so a change costs the round trip, not
// correctness: a server that cannot parse its Extra rejects early data (the
// client sends it again in 1-RTT), and a client that cannot parse its own
// sends none, its dial holding the peer's packets back for gateWait before
// the handshake goes on. TestEarlyData reports either.

// earlyLimits are the server transport parameters a client assumes in
// 0-RTT (RFC 9000 §18.2): one bidirectional stream with 16 KiB of data,
// no unidirectional stream, and the active_connection_id_limit quic-go
// servers send (which its ValidFor0RTT requires to be equal).
var earlyLimits = []struct {
	id, value uint64
}{
	{0x05, 0},        // initial_max_stream_data_bidi_local
	{0x06, 16 << 10}, // initial_max_stream_data_bidi_remote
	{0x07, 0},        // initial_max_stream_data_uni
	{0x04, 16 << 10}, // initial_max_data
	{0x08, 1},        // initial_max_streams_bidi
	{0x09, 0},        // initial_max_streams_uni
	{0x0e, 4},        // active_connection_id_limit
}

// quic-go's session encodings (v0.66, internal/handshake:
// session_ticket.go and crypto_setup.go). Each Extra entry starts with
// the prefix "quic-go1". The client's session state then holds a varint
// revision (5) and the server's transport parameters; the server's ticket
// holds the QUIC version it was issued on (4 octets: hipnet dials QUIC
// version 1, RFC 9000), a varint revision (6) and its own parameters.
// Parameters are marshalled as for a session ticket: a varint format
// version (1), then each as varint id, varint length, varint value.
const (
	quicExtraPrefix      = "quic-go1"
	quicClientStateRev   = 5
	quicServerTicketRev  = 6
	quicParamsFormatVers = 1
	quicVersion1         = 0x00000001
)

// Extra entries of the client's and the server's synthetic sessions.
var (
	earlyClientExtra = earlyExtra(nil, quicClientStateRev)
	earlyServerExtra = earlyExtra(binary.BigEndian.AppendUint32(nil, quicVersion1), quicServerTicketRev)
)

// earlyExtra is an Extra entry: the prefix, head, the revision, and
// earlyLimits.
func earlyExtra(head []byte, revision uint64) []byte {
	b := append([]byte(quicExtraPrefix), head...)
	b = quicvarint.Append(b, revision)
	b = quicvarint.Append(b, quicParamsFormatVers)
	for _, p := range earlyLimits {
		b = quicvarint.Append(b, p.id)
		b = quicvarint.Append(b, uint64(quicvarint.Len(p.value)))
		b = quicvarint.Append(b, p.value)
	}
	return b
}

// firstStream is the stream a Dial wants on a connection that its own
// dial creates. With 0-RTT it is opened by the dial itself, before the
// server's first packet may reach the connection (openFirst), and the
// Dial takes it once the connection is up; every other stream on a
// connection waits for the handshake to complete (openStream).
//
// Why: quic-go reads the peer's transport parameters when it creates a
// stream, and its connection goroutine writes them when the handshake
// completes, with nothing ordering the two (quic-go issue #4303; v0.66
// made one of the fields atomic, not the other). So while the first
// stream is being created, the server's packets are held back at our
// PacketConn (gates): the connection goroutine can only complete the
// handshake on a packet that ReadFrom released after the stream exists,
// which orders the creation before it, for the memory model and for the
// race detector alike.
type firstStream struct {
	port, src int

	mu   sync.Mutex
	c    *quic.Conn // the connection st is on
	st   *quic.Stream
	gone bool // the Dial took its stream (or gave up): put must abort
}

// put hands st, on c, to the Dial; false if the Dial is gone, and st must
// be aborted.
func (f *firstStream) put(c *quic.Conn, st *quic.Stream) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone {
		return false
	}
	f.c, f.st = c, st
	return true
}

// take returns the stream the dial opened if it is on qc, the connection
// the Dial got; later puts fail. A stream on another connection (the
// dialed one lost a simultaneous open to the peer's, addConn) is aborted:
// its connection is retired, and the Dial opens its stream on qc.
func (f *firstStream) take(qc *qconn) *quic.Stream {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	st, c := f.st, f.c
	f.gone, f.st, f.c = true, nil, nil
	f.mu.Unlock()
	if st != nil && (qc == nil || qc.c != c) {
		abortStream(st)
		return nil
	}
	return st
}

// openFirst opens first's stream on c, whose 0-RTT handshake is under way,
// and writes its header: it goes out in 0-RTT right behind the
// ClientHello. The caller holds the peer's gate. On failure the Dial opens
// its stream later, as any other.
//
// The peer's packets wait meanwhile, so nothing here may block for long:
// the stream limit of earlyLimits allows this one stream at once, and the
// header's write is bounded by gateWait.
func (m *Manager) openFirst(ctx context.Context, c *quic.Conn, first *firstStream) {
	ctx, cancel := context.WithTimeout(ctx, gateWait)
	defer cancel()
	st, err := c.OpenStreamSync(ctx)
	if err != nil {
		return
	}
	st.SetWriteDeadline(time.Now().Add(gateWait))
	err = writeHeader(st, first.port, first.src)
	st.SetWriteDeadline(time.Time{})
	if err != nil || !first.put(c, st) {
		abortStream(st)
	}
}

// handshakeDone reports whether c's handshake has completed.
func handshakeDone(c *quic.Conn) bool {
	select {
	case <-c.HandshakeComplete():
		return true
	default:
		return false
	}
}

// gateWait bounds how long a dial holds its peer's packets back waiting
// for DialEarly to return. With 0-RTT it returns once the ClientHello is
// built; without (quic-go refused our session's early data) it waits for
// the handshake, which needs those packets: the gate then opens at this
// deadline, and the Dial opens its stream after the handshake instead.
//
// A variable only for the tests, which lengthen it to make a gate held by
// mistake unmistakable.
var gateWait = 25 * time.Millisecond

// gates holds back the packets of peers whose first 0-RTT stream is being
// created (firstStream). The read path pays one atomic load per packet
// while no gate is held.
type gates struct {
	held atomic.Int32 // gates in m
	mu   sync.Mutex
	m    map[wire.HIT]*gate
}

// gate is one peer's: open closes when it is released.
type gate struct {
	open    chan struct{}
	claimed bool // the dial is creating the stream: no expiry
	done    bool
}

// hold shuts peer's gate until release, or until gateWait passes without
// a claim. One dial per peer holds one at a time (Manager.conn).
func (g *gates) hold(peer wire.HIT) *gate {
	gt := &gate{open: make(chan struct{})}
	g.mu.Lock()
	if g.m == nil {
		g.m = make(map[wire.HIT]*gate)
	}
	g.m[peer] = gt
	g.held.Add(1)
	g.mu.Unlock()
	time.AfterFunc(gateWait, func() { g.expire(peer, gt) })
	return gt
}

// claim keeps gt shut until release; false if it has expired (the stream
// must then wait for the handshake).
func (g *gates) claim(gt *gate) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gt.done {
		return false
	}
	gt.claimed = true
	return true
}

func (g *gates) expire(peer wire.HIT, gt *gate) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !gt.claimed {
		g.releaseLocked(peer, gt)
	}
}

// release opens gt.
func (g *gates) release(peer wire.HIT, gt *gate) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.releaseLocked(peer, gt)
}

func (g *gates) releaseLocked(peer wire.HIT, gt *gate) {
	if gt.done {
		return
	}
	gt.done = true
	if g.m[peer] == gt {
		delete(g.m, peer)
	}
	g.held.Add(-1)
	close(gt.open)
}

// pass waits until from's gate, if shut, opens. The lock (or, with no gate
// held, the atomic) orders what the dial did before release before
// everything that follows from the packet.
func (g *gates) pass(from wire.HIT) {
	if g.held.Load() == 0 {
		return
	}
	g.mu.Lock()
	gt := g.m[from]
	g.mu.Unlock()
	if gt != nil {
		<-gt.open
	}
}
