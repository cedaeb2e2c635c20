package overlay

import (
	"slices"
	"sync"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// The association table (DESIGN.md "Associations and the store"): one
// record per association, keyed by peer HIT. It is the source of truth for
// Peers, PeerIdentity, Stats and WatchAssociation. Records are immutable:
// the control goroutine writes a new one on every change of state, SAs or
// locator — never per packet. Packet and byte counters live in atomics on
// the per-peer struct the record points to.
//
// DESIGN.md puts this table in hashicorp/go-memdb, with indexes by local
// HIT, inbound SPI and state as well. It lived there until the relay's
// memory goal (issue 12: a registration ≤ 2 KiB at 10 000 of them) showed
// what that costs: go-memdb's immutable radix tree made about 390 octets per
// record on the one index we kept (new nodes and leaves, each with the
// watch channel the tree keeps on it), 17% of a relay registration and the
// one part that could not be made smaller. What we used of it is a unique
// index by peer HIT, reads that never see a half-written record, and a
// channel that closes when a record changes. A map under a read-write lock
// gives the first two for about 40 octets a record, and watchers pay for
// the third only while they watch. Nothing looks associations up by SPI
// or state: the data path has its own SPI table (spiTable), and Stats
// counts states in one pass.

// assocRecord is one association as stored.
type assocRecord struct {
	HIT      wire.HIT
	Info     handshake.Info    // its State is the record's
	Identity *hostid.PublicKey // nil until authenticated
	peer     *peer
	// gen and leftGen are AssocWatch's Gen and LeftGen, which put works
	// out from the record this one replaces.
	gen, leftGen uint64
}

// assocTable holds the records. Writers are the control goroutine only;
// readers are any goroutine.
type assocTable struct {
	mu   sync.RWMutex
	recs map[wire.HIT]*assocRecord
	// watch holds the channels of WatchAssociation for records that
	// exist, made on the first watch and closed (and removed) when the
	// record is replaced or removed. So a record nobody watches has no
	// channel, and no channel outlives the record it watches.
	watch map[wire.HIT]chan struct{}
	// created is the channel of watches of records that do not exist: it
	// is closed at the next creation of any record, then made anew on the
	// next such watch. Sharing it costs those watchers a spurious wake-up
	// now and then (they look again, as they must anyway), and a watch of
	// a HIT that never comes costs nothing per HIT.
	created chan struct{}
	// gens is the last generation given to an association (put).
	gens uint64
}

func newAssocTable() *assocTable {
	return &assocTable{recs: map[wire.HIT]*assocRecord{}, watch: map[wire.HIT]chan struct{}{}}
}

// put inserts or replaces r, and numbers its association (generations).
func (t *assocTable) put(r *assocRecord) {
	t.mu.Lock()
	defer t.mu.Unlock()
	prev, had := t.recs[r.HIT]
	t.generations(prev, r)
	t.recs[r.HIT] = r
	t.fire(r.HIT)
	if !had && t.created != nil {
		close(t.created)
		t.created = nil
	}
}

// generations sets r's gen and leftGen from prev, the record r replaces
// (nil if none); t.mu is held. An association gets a new number when it
// becomes live: from a state that was not (the exchange completed, on
// either side), or from ESTABLISHED to R2-SENT, which only a new base
// exchange with the peer reaches (an I2 in ESTABLISHED, RFC 7401 §4.4.4:
// the peer restarted). Rekeying, a move and the other states keep it.
// The association's end by the peer's CLOSE (state CLOSED, as
// ClosedByPeer) is noted as leftGen, and carried for as long as the peer
// has a record.
func (t *assocTable) generations(prev, r *assocRecord) {
	if prev != nil {
		r.gen, r.leftGen = prev.gen, prev.leftGen
	}
	st := r.Info.State
	if r.live() && (!prev.live() || st == handshake.R2Sent && prev.Info.State == handshake.Established) {
		t.gens++
		r.gen = t.gens
	}
	if st == handshake.Closed && (prev == nil || prev.Info.State != handshake.Closed) {
		r.leftGen = r.gen
	}
}

// delete removes the record of peer h, if any.
func (t *assocTable) delete(h wire.HIT) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.recs[h]; ok {
		delete(t.recs, h)
		t.fire(h)
	}
}

// fire closes and forgets the watch channel of h, if any; t.mu is held.
func (t *assocTable) fire(h wire.HIT) {
	if ch, ok := t.watch[h]; ok {
		close(ch)
		delete(t.watch, h)
	}
}

// get returns the record of peer h, or nil.
func (t *assocTable) get(h wire.HIT) *assocRecord {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.recs[h]
}

// watchOf returns the record of h (nil if none) and a channel closed at
// its next change.
func (t *assocTable) watchOf(h wire.HIT) (*assocRecord, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.recs[h]
	if r == nil {
		if t.created == nil {
			t.created = make(chan struct{})
		}
		return nil, t.created
	}
	ch, ok := t.watch[h]
	if !ok {
		ch = make(chan struct{})
		t.watch[h] = ch
	}
	return r, ch
}

// all returns the records in HIT order.
func (t *assocTable) all() []*assocRecord {
	t.mu.RLock()
	out := make([]*assocRecord, 0, len(t.recs))
	for _, r := range t.recs {
		out = append(out, r)
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b *assocRecord) int { return a.HIT.Compare(b.HIT) })
	return out
}

// states counts the records by state.
func (t *assocTable) states() map[string]int {
	m := map[string]int{}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, r := range t.recs {
		m[r.Info.State.String()]++
	}
	return m
}

// AssocWatch is one look at the association with a peer
// (WatchAssociation).
type AssocWatch struct {
	// Live: the association can carry data now (R2-SENT or ESTABLISHED:
	// it has both SAs).
	Live bool
	// Gen numbers the association that is live, or else the last one
	// that was; 0 if none has been since the peer's record was created.
	// Each new association gets a number greater than any before it in
	// this Stack; rekeying and moves keep it. A watcher that misses a
	// change (an association ended and the next came up before it
	// looked) sees it here: Gen differs from the one it saw.
	Gen uint64
	// LeftGen is the Gen of the last association that the peer ended
	// with its CLOSE (ClosedByPeer), 0 if none.
	LeftGen uint64
}

// LeftSince reports whether the peer ended association gen, or a later
// one, with its CLOSE.
func (w AssocWatch) LeftSince(gen uint64) bool { return w.LeftGen != 0 && w.LeftGen >= gen }

// WatchAssociation looks at the association with hit, and returns a
// channel that is closed at the next change of its record: of its state,
// SAs or locator, or when it is created or forgotten (and, while there is
// no record, maybe at the creation of another: look again). A caller that
// must act when the association ends (package streams closes the peer's
// QUIC connections) loops: wait for changed, look again, until it is no
// longer live or its Gen is not the one it saw.
//
// The control goroutine writes the record after it has acted on the
// association's events, so when Live turns false the SAs are already
// out of the data path. It costs no goroutine and nothing per packet, and
// one channel per watched record (assocTable.watch).
func (s *Stack) WatchAssociation(hit wire.HIT) (w AssocWatch, changed <-chan struct{}) {
	r, ch := s.db.watchOf(hit)
	if r != nil {
		w = AssocWatch{Live: r.live(), Gen: r.gen, LeftGen: r.leftGen}
	}
	return w, ch
}

// Live reports whether the association with hit can carry data now, as
// WatchAssociation's Live, without making a channel.
func (s *Stack) Live(hit wire.HIT) bool { return s.db.get(hit).live() }

// ClosedByPeer reports whether the association with hit ended with the
// peer's CLOSE (RFC 7401 §5.3.7, §6.14: the state is CLOSED, where a CLOSE
// that crossed ours leads as well), as opposed to our own Close, a failed
// exchange or SAs that expired or were lost. It lets a layer above tell
// a peer that left from a peer it lost: package streams retries a dial
// on a new association after a loss, but not after a CLOSE, when the
// peer is gone and a base exchange with it would only time out.
func (s *Stack) ClosedByPeer(hit wire.HIT) bool {
	r := s.db.get(hit)
	return r != nil && r.Info.State == handshake.Closed
}

// live: the record's association has both SAs (R2-SENT or ESTABLISHED).
func (r *assocRecord) live() bool {
	return r != nil && (r.Info.State == handshake.Established || r.Info.State == handshake.R2Sent)
}
