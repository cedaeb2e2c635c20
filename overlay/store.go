package overlay

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// The association table (DESIGN.md "Associations and the store"): one
// go-memdb table, "assoc", one record per association, indexed by peer HIT
// ("id"). DESIGN.md also lists indexes by inbound SPI and by state; they are
// left out on purpose. Nothing looks records up that way (the data path
// has its own SPI table, spiTable, and Stats counts states in one pass),
// and each go-memdb index costs about 390 octets per association (radix
// nodes with their watch channels), which a relay pays for every
// registered host. It is the source of truth
// for Peers and for the control plane's view. Records are immutable: the
// control goroutine writes a new one on every change of state, SAs or
// locator — never per packet. Packet and byte counters live in atomics on
// the per-peer struct the record points to.

const (
	tableAssoc = "assoc"
	indexID    = "id"
)

// assocRecord is one association as stored.
type assocRecord struct {
	HIT      wire.HIT
	Info     handshake.Info    // its State is the record's
	Identity *hostid.PublicKey // nil until authenticated
	peer     *peer
}

func newStore() (*memdb.MemDB, error) {
	return memdb.NewMemDB(&memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableAssoc: {
			Name: tableAssoc,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: hitIndex{}},
			},
		},
	}})
}

// hitIndex indexes records (association or registration) by peer HIT, the
// 16 octets as they are.
type hitIndex struct{}

func (hitIndex) FromObject(raw any) (bool, []byte, error) {
	// Records are immutable, so the key may alias the record's HIT.
	switch r := raw.(type) {
	case *assocRecord:
		return true, r.HIT[:], nil
	}
	return false, nil, fmt.Errorf("overlay: %T is not an association or registration record", raw)
}

func (hitIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("overlay: hit index takes one argument")
	}
	h, ok := args[0].(wire.HIT)
	if !ok {
		return nil, fmt.Errorf("overlay: hit index argument %T is not a wire.HIT", args[0])
	}
	return append([]byte(nil), h[:]...), nil
}

// putRecord inserts or replaces r.
func putRecord(db *memdb.MemDB, r *assocRecord) error {
	txn := db.Txn(true)
	if err := txn.Insert(tableAssoc, r); err != nil {
		txn.Abort()
		return err
	}
	txn.Commit()
	return nil
}

// deleteRecord removes the record of peer h, if any.
func deleteRecord(db *memdb.MemDB, h wire.HIT) error {
	txn := db.Txn(true)
	if _, err := txn.DeleteAll(tableAssoc, indexID, h); err != nil {
		txn.Abort()
		return err
	}
	txn.Commit()
	return nil
}

// WatchAssociation reports whether the association with hit can carry data
// now (R2-SENT or ESTABLISHED: it has both SAs), and returns a channel that
// is closed at the next change of its record: of its state, SAs or
// locator, or when it is created or forgotten. A caller that must act when
// the association ends (package streams closes the peer's QUIC
// connections) loops: wait for changed, call again, until live is false.
//
// The control goroutine writes the record after it has acted on the
// association's events, so when live turns false the SAs are already
// out of the data path. It costs no goroutine and nothing per packet:
// changed is the watch channel go-memdb keeps on the record anyway.
func (s *Stack) WatchAssociation(hit wire.HIT) (live bool, changed <-chan struct{}) {
	ch, raw, err := s.db.Txn(false).FirstWatch(tableAssoc, indexID, hit)
	if err != nil { // not with a wire.HIT argument
		c := make(chan struct{})
		close(c)
		return false, c
	}
	if r, ok := raw.(*assocRecord); ok {
		live = r.Info.State == handshake.Established || r.Info.State == handshake.R2Sent
	}
	return live, ch
}

// getRecord returns the record of peer h, or nil.
func getRecord(db *memdb.MemDB, h wire.HIT) *assocRecord {
	raw, err := db.Txn(false).First(tableAssoc, indexID, h)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*assocRecord)
}
