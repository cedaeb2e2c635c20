package streams

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"hipnet.dev/handshake/wire"
)

// Connection IDs, and why a connection never leaves its peer's HIT.
//
// One quic.Transport carries every connection, and it hands each datagram
// to the connection its destination connection ID names (RFC 9000 §5.2),
// whoever sent it. A quic-go server connection then treats a packet from
// another address as the peer moving (RFC 9000 §9): it processes the
// packet's frames, probes the new address (§8.2) and, once the probe is
// answered, sends everything there. Here an address is a HIT, so a peer
// B that gave its QUIC keys and connection IDs to a host C (which has an
// association of its own with us) could have C's packets accepted as
// B's, and our answers sent to C, while the stream still named B.
//
// So the PacketConn checks, before quic-go sees a datagram, that its
// destination connection ID may come from the HIT the ESP SA
// authenticated (cidTable.admit), and drops it otherwise. Every
// connection ID quic-go can route to a connection is in the table:
//
//   - the ones this node issues, drawn by our ConnectionIDGenerator
//     (cidGenerator), which records each unbound. A connection ID reaches
//     the peer first in the Source Connection ID of a long-header packet
//     we send (RFC 9000 §7.2), in clear: WriteTo binds it to that
//     packet's destination HIT before the packet leaves (cidTable.sent),
//     so it is bound before anyone can use it. A packet with an unbound
//     one is dropped.
//   - the client's first Destination Connection ID, which a server
//     connection answers to until its handshake is done (RFC 9000 §7.2).
//     The client chose it; it is bound to the sender of the first Initial
//     or 0-RTT packet that carries it (a 0-RTT packet may overtake its
//     Initial, and quic-go queues it for the connection the Initial then
//     creates), which is the sender quic-go makes the connection's peer:
//     the ID travels inside the client's ESP, so no one else can name it
//     first, unless the client told them. Any other long-header packet
//     with an unknown one is dropped. (So is an Initial of a version
//     other than 1 and 2, which would get a Version Negotiation, RFC 9000
//     §6: hipnet speaks version 1.)
//
// A short-header packet with an ID not in the table names no connection
// of ours (it is a peer's stateless reset, RFC 9000 §10.3, or a late
// packet of a connection gone) and goes to quic-go, which routes it to
// no connection.
//
// Connection IDs a connection issues later, in NEW_CONNECTION_ID frames
// (RFC 9000 §5.1.1), travel encrypted: nothing outside quic-go could bind
// them, and quic-go's generator is not told for which connection it
// draws. So this node issues none: a connection keeps the ID of its
// handshake for its life. RFC 9000 §5.1.1 lets an endpoint issue fewer
// than the peer's active_connection_id_limit, and what the spare IDs are
// for, migration without linking the paths (RFC 9000 §9.5), has no place
// here: the peer's path is its HIT, and the IDs travel inside ESP. quic-go
// offers no switch for it; it issues none for zero-length connection IDs,
// and asks the generator for the length once when the Transport starts
// and again, on each connection, only to decide that (v0.66:
// transport.go init, conn_id_generator.go SetMaxActiveConnIDs). So
// ConnectionIDLen reports cidLen the first time and 0 after.
// TestNoNewConnectionIDs pins this. Should quic-go change, the failure is
// loud, not a hole: the IDs it issued would be unbound, and the peer's
// packets with them dropped. What it costs: a client's ID comes with no
// stateless reset token (only a server's, in its transport parameters, and
// those of NEW_CONNECTION_ID frames have one, RFC 9000 §10.3), so a node
// that restarts resets the connections it had accepted (manager.go,
// statelessResetKey), no longer those it had dialed: their peers wait for
// the idle timeout, or, over the overlay, close them when the association
// is replaced (watchAssociation), as before.
//
// With no packet of another HIT reaching a connection, quic-go's path
// validation never starts: the connection neither hears from nor sends to
// any HIT but its peer's. A stateless reset is the one packet that acts
// on a connection without naming it; one from another HIT carries the
// reset token the peer issued, so it ends the connection only with the
// peer's consent, which could end the connection itself.
//
// The length: 8 octets, not quic-go's default of 4. The Transport answers
// a short-header packet with an unknown ID with a stateless reset whose
// token is a function of that ID (RFC 9000 §10.3.2); with 4 octets a host
// could collect the tokens of all 2^32 IDs, and end other hosts'
// connections with us from then on with forged resets (RFC 9000 §21.11).
// IDs bound to another HIT never get that answer here, but future ones
// would; 2^64 is out of reach. The cost is 4 octets in every packet, 0.3%
// of PacketSize.

// cidLen is the length of the connection IDs this node issues. The table
// keys IDs of this length as a uint64 (the hot path: one lookup per
// datagram).
const cidLen = 8

// Limits of the table.
const (
	// cidGrace covers how long quic-go still answers to a closed
	// connection's IDs (three PTOs, RFC 9000 §10.2), and more.
	cidGrace = time.Minute
	// odcidsPerPeer bounds the client-chosen IDs a peer may have bound at
	// once: a peer sending Initials with ever new IDs is refused beyond
	// it, as it is beyond attemptBurst (limits.go).
	odcidsPerPeer = 256
	// ownPerPeer bounds the IDs of ours bound to one peer. A connection
	// holds one (no NEW_CONNECTION_ID, above), a Retry one more, and a
	// peer has at most maxInboundPerPeer connections to us and those we
	// dial; the rest is room for closed connections' IDs until they are
	// swept. A peer that sends on the IDs of its closed connections to
	// keep them cannot keep more: the least used go first.
	ownPerPeer = 64
	// minClientDCID is the least length of a client's first Destination
	// Connection ID (RFC 9000 §7.2).
	minClientDCID = 8
	// maxCIDLen is the longest connection ID of QUIC version 1 (RFC 9000
	// §17.2); quic-go routes none longer.
	maxCIDLen = 20
)

// QUIC versions whose Initial packets the table recognizes: version 1
// (RFC 9000), whose Initial has long packet type 0 (§17.2), and version 2
// (RFC 9369 §3.2), where it has type 1.
const (
	quicV1 = 0x00000001
	quicV2 = 0x6b3343cf
)

// cidTable maps connection IDs to the HIT that may use them.
type cidTable struct {
	// dropped counts the datagrams the table kept from quic-go.
	dropped atomic.Uint64

	mu sync.RWMutex
	// ids8 holds the IDs of cidLen octets (ours, and clients' of that
	// length), idsN the clients' of other lengths.
	ids8 map[uint64]*cidEntry
	idsN map[quic.ConnectionID]*cidEntry
	// odcids counts each peer's client-chosen IDs, own each peer's bound
	// IDs of ours.
	odcids, own map[wire.HIT]int
	// An unused entry of ours goes at the first sweep that finds it unused
	// since the sweep before; sweeps are every sweepEvery at most, on
	// inserts. A client-chosen ID goes at the first sweep odcidLife after
	// it came (setLifetimes).
	sweepEvery, odcidLife time.Duration
	swept                 time.Time
}

// cidEntry is one ID's; owner and bound change under cidTable.mu's write
// lock, used is set under its read lock.
type cidEntry struct {
	owner wire.HIT // who may use it, once bound
	bound bool
	odcid bool      // a client's first Destination Connection ID
	born  time.Time // when it came (odcid)
	used  atomic.Bool
}

func newCIDTable() *cidTable {
	t := &cidTable{
		ids8:   make(map[uint64]*cidEntry),
		idsN:   make(map[quic.ConnectionID]*cidEntry),
		odcids: make(map[wire.HIT]int),
		own:    make(map[wire.HIT]int),
		swept:  time.Now(),
	}
	t.setLifetimes(&quic.Config{})
	return t
}

// setLifetimes sizes the sweeps to the connections of q. A connection
// hears from its peer at least every 2×MaxIdleTimeout or is closed: its
// idle timer restarts on a received packet, and once on the first packet
// it sends after (RFC 9000 §10.1); a handshake ends within
// 2×HandshakeIdleTimeout (quic-go's handshake timeout). Only then, and
// cidGrace later, may its IDs go. quic-go's defaults stand for zeros.
func (t *cidTable) setLifetimes(q *quic.Config) {
	idle := q.MaxIdleTimeout
	if idle <= 0 {
		idle = 30 * time.Second
	}
	hs := q.HandshakeIdleTimeout
	if hs <= 0 {
		hs = 5 * time.Second
	}
	t.mu.Lock()
	t.sweepEvery = 2*max(idle, hs) + cidGrace
	t.odcidLife = 2*hs + cidGrace
	t.mu.Unlock()
}

// get returns id's entry, or nil; t.mu is held.
func (t *cidTable) get(id []byte) *cidEntry {
	if len(id) == cidLen {
		return t.ids8[binary.LittleEndian.Uint64(id)]
	}
	return t.idsN[quic.ConnectionIDFromBytes(id)]
}

// put adds id; t.mu is write-locked.
func (t *cidTable) put(id []byte, e *cidEntry) {
	if len(id) == cidLen {
		t.ids8[binary.LittleEndian.Uint64(id)] = e
	} else {
		t.idsN[quic.ConnectionIDFromBytes(id)] = e
	}
}

// cidGenerator is the Transport's ConnectionIDGenerator: random IDs of
// cidLen octets, recorded unbound in the table.
type cidGenerator struct {
	t       *cidTable
	lenRead atomic.Bool
}

func (g *cidGenerator) GenerateConnectionID() (quic.ConnectionID, error) {
	return g.t.generate(time.Now())
}

// ConnectionIDLen is cidLen the first time, which is when quic-go's
// Transport starts, and 0 after, so that connections issue no further IDs
// (see above).
func (g *cidGenerator) ConnectionIDLen() int {
	if g.lenRead.Swap(true) {
		return 0
	}
	return cidLen
}

func (t *cidTable) generate(now time.Time) (quic.ConnectionID, error) {
	var b [cidLen]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return quic.ConnectionID{}, err
		}
		t.mu.Lock()
		if t.get(b[:]) == nil {
			e := &cidEntry{born: now}
			e.used.Store(true)
			t.put(b[:], e)
			t.sweepLocked(now)
			t.mu.Unlock()
			return quic.ConnectionIDFromBytes(b[:]), nil
		}
		t.mu.Unlock()
	}
}

// admit reports whether the datagram b from HIT from may go to quic-go.
func (t *cidTable) admit(b []byte, from wire.HIT) bool {
	if len(b) == 0 {
		return true
	}
	if b[0]&0x80 == 0 { // short header (RFC 9000 §17.3)
		if b[0]&0x40 == 0 || len(b) < 1+cidLen {
			return true // not QUIC (the fixed bit), or too short: quic-go drops it
		}
		known, ok := t.lookup(b[1:1+cidLen], from)
		return ok || !known
	}
	version, dcid, _, ok := longHeaderIDs(b)
	if !ok {
		return t.drop()
	}
	if known, ok := t.lookup(dcid, from); known {
		return ok
	}
	switch kind := firstFlight(b[0], version); {
	case len(dcid) < minClientDCID, kind == 0:
		return t.drop()
	case kind == initialPacket && len(b) < minPacketSize:
		return t.drop() // a client's Initial fills 1200 octets (RFC 9000 §14.1)
	}
	return t.bindInitial(dcid, from, time.Now())
}

// lookup reports whether id is in the table and, if so, whether from may
// use it, counting a refusal.
func (t *cidTable) lookup(id []byte, from wire.HIT) (known, ok bool) {
	t.mu.RLock()
	if e := t.get(id); e != nil {
		known, ok = true, e.bound && e.owner == from
		if ok && !e.used.Load() {
			e.used.Store(true)
		}
	}
	t.mu.RUnlock()
	if known && !ok {
		t.dropped.Add(1)
	}
	return known, ok
}

func (t *cidTable) drop() bool {
	t.dropped.Add(1)
	return false
}

// bindInitial binds id, the Destination Connection ID of a client's first
// Initial, to from, unless from has odcidsPerPeer bound already.
func (t *cidTable) bindInitial(id []byte, from wire.HIT, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	if e := t.get(id); e != nil {
		return e.bound && e.owner == from || t.drop()
	}
	if t.odcids[from] >= odcidsPerPeer {
		return t.drop()
	}
	e := &cidEntry{owner: from, bound: true, odcid: true, born: now}
	e.used.Store(true)
	t.put(id, e)
	t.odcids[from]++
	return true
}

// sent binds the Source Connection ID of b, a datagram we send to HIT to,
// to that HIT; it reports false, and b must not leave, if the ID is bound
// to another (quic-go would have put a connection's ID in another's
// packet).
func (t *cidTable) sent(b []byte, to wire.HIT) bool {
	if len(b) == 0 || b[0]&0x80 == 0 {
		return true // short header: no Source Connection ID
	}
	_, _, scid, ok := longHeaderIDs(b)
	if !ok || len(scid) == 0 {
		return true
	}
	t.mu.RLock()
	e := t.get(scid)
	bound := e != nil && e.bound
	ok = !bound || e.owner == to
	t.mu.RUnlock()
	if bound {
		return ok || t.drop()
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if e = t.get(scid); e == nil { // ours, swept before its first use
		e = &cidEntry{born: now}
		t.put(scid, e)
		t.sweepLocked(now)
	}
	if e.bound {
		return e.owner == to || t.drop()
	}
	e.owner, e.bound = to, true
	e.used.Store(true)
	if t.own[to]++; t.own[to] > ownPerPeer {
		t.evictOwn(to, e)
	}
	return true
}

// evictOwn forgets one of h's bound IDs of ours other than keep: one
// unused since the last sweep if there is one, else the oldest; t.mu is
// write-locked. Only a peer keeping more than ownPerPeer gets here.
func (t *cidTable) evictOwn(h wire.HIT, keep *cidEntry) {
	var (
		victim uint64
		v      *cidEntry
	)
	for id, e := range t.ids8 {
		if e == keep || e.odcid || !e.bound || e.owner != h {
			continue
		}
		if v == nil || e.staler(v) {
			victim, v = id, e
		}
	}
	if v != nil {
		delete(t.ids8, victim)
		t.uncount(v)
	}
}

// staler reports whether e goes before o: unused since the last sweep
// first, then the older.
func (e *cidEntry) staler(o *cidEntry) bool {
	if eu, ou := e.used.Load(), o.used.Load(); eu != ou {
		return !eu
	}
	return e.born.Before(o.born)
}

// uncount takes e, forgotten, out of its owner's count; t.mu is
// write-locked.
func (t *cidTable) uncount(e *cidEntry) {
	if !e.bound {
		return
	}
	m := t.own
	if e.odcid {
		m = t.odcids
	}
	if m[e.owner]--; m[e.owner] <= 0 {
		delete(m, e.owner)
	}
}

// sweepLocked forgets the IDs no connection can use any more; t.mu is
// write-locked.
func (t *cidTable) sweepLocked(now time.Time) {
	if now.Sub(t.swept) < t.sweepEvery {
		return
	}
	t.swept = now
	for id, e := range t.ids8 {
		if t.expired(e, now) {
			delete(t.ids8, id)
		}
	}
	for id, e := range t.idsN {
		if t.expired(e, now) {
			delete(t.idsN, id)
		}
	}
}

// expired reports whether e goes at the sweep at now, and uncounts it;
// t.mu is write-locked.
func (t *cidTable) expired(e *cidEntry, now time.Time) bool {
	if !e.odcid {
		if e.used.Swap(false) {
			return false
		}
		t.uncount(e)
		return true
	}
	if now.Sub(e.born) < t.odcidLife {
		return false
	}
	t.uncount(e)
	return true
}

// longHeaderIDs parses the version-independent long header (RFC 8999
// §5.1); ok is false if b is too short or a connection ID is longer than
// maxCIDLen.
func longHeaderIDs(b []byte) (version uint32, dcid, scid []byte, ok bool) {
	if len(b) < 7 {
		return 0, nil, nil, false
	}
	version = binary.BigEndian.Uint32(b[1:5])
	dl := int(b[5])
	if dl > maxCIDLen || len(b) < 7+dl {
		return 0, nil, nil, false
	}
	sl := int(b[6+dl])
	if sl > maxCIDLen || len(b) < 7+dl+sl {
		return 0, nil, nil, false
	}
	return version, b[6 : 6+dl], b[7+dl : 7+dl+sl], true
}

// A client's first flight: the packet kinds that carry the Destination
// Connection ID the client chose.
const (
	initialPacket = 1 + iota
	zeroRTTPacket
)

// firstFlight says whether a long-header packet with first octet first
// is an Initial or a 0-RTT packet of version (RFC 9000 §17.2: types 0 and
// 1; RFC 9369 §3.2: 1 and 2), 0 if neither. Both carry the ID the client
// chose, and a 0-RTT packet may overtake its Initial on the way (each is
// a datagram of its own): whichever comes first binds the ID to its
// sender. No one else can name it first: it travels inside the client's
// ESP, and only the client, or whom it tells, knows it.
func firstFlight(first byte, version uint32) int {
	typ := first >> 4 & 0x3
	switch {
	case version == quicV1 && typ == 0, version == quicV2 && typ == 1:
		return initialPacket
	case version == quicV1 && typ == 1, version == quicV2 && typ == 2:
		return zeroRTTPacket
	}
	return 0
}
