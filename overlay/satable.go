package overlay

import (
	"sync/atomic"

	"hipnet.dev/esp"
)

// inboundSA is an installed inbound SA and the peer it belongs to: what the
// data path finds by SPI.
type inboundSA struct {
	sa *esp.Inbound
	p  *peer
	// notify: the control goroutine wants to hear, once, that data arrived
	// on this SA (R2-SENT → ESTABLISHED; the peer finished a rekey).
	notify atomic.Bool
}

// spiShards splits the SPI table so that installing or removing one SA
// copies about n/spiShards entries instead of all n (SPIs are random, so the
// low bits spread them evenly). A power of two.
const spiShards = 1024

// spiTable maps inbound SPIs to SAs for the data path (DESIGN.md
// "Associations and the store"): each shard is an immutable map behind an
// atomic pointer, replaced whole on change (copy-on-write), so a lookup is
// one atomic load and one map read — O(1), lock-free, allocation-free — and
// never takes the association table's lock. That table (store.go) stays
// the source of truth; this is derived from it by the control goroutine,
// the only writer.
type spiTable struct {
	shards [spiShards]atomic.Pointer[map[uint32]*inboundSA]
}

func (t *spiTable) lookup(spi uint32) *inboundSA {
	m := t.shards[spi&(spiShards-1)].Load()
	if m == nil {
		return nil
	}
	return (*m)[spi]
}

// set installs v under spi. Control goroutine only.
func (t *spiTable) set(spi uint32, v *inboundSA) {
	sh := &t.shards[spi&(spiShards-1)]
	var m map[uint32]*inboundSA
	if old := sh.Load(); old != nil {
		m = make(map[uint32]*inboundSA, len(*old)+1)
		for k, x := range *old {
			m[k] = x
		}
	} else {
		m = make(map[uint32]*inboundSA, 1)
	}
	m[spi] = v
	sh.Store(&m)
}

// remove uninstalls spi if it still maps to v. Control goroutine only.
func (t *spiTable) remove(spi uint32, v *inboundSA) {
	sh := &t.shards[spi&(spiShards-1)]
	old := sh.Load()
	if old == nil || (*old)[spi] != v {
		return
	}
	if len(*old) == 1 {
		sh.Store(nil)
		return
	}
	m := make(map[uint32]*inboundSA, len(*old)-1)
	for k, x := range *old {
		if k != spi {
			m[k] = x
		}
	}
	sh.Store(&m)
}

// len counts the installed SAs (for tests and introspection).
func (t *spiTable) len() int {
	n := 0
	for i := range t.shards {
		if m := t.shards[i].Load(); m != nil {
			n += len(*m)
		}
	}
	return n
}
