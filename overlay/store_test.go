package overlay

import (
	"testing"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
)

func hitN(n byte) wire.HIT {
	var h wire.HIT
	h[0], h[1], h[2], h[15] = 0x20, 0x01, 0x20, n
	return h
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestAssocTableWatch: a watch of a record fires when it is replaced or
// removed, and not before; a watch of a missing record fires when it is
// created; no channel stays behind for a record nobody watches any more.
func TestAssocTableWatch(t *testing.T) {
	tb := newAssocTable()
	h := hitN(1)
	r, absent := tb.watchOf(h)
	if r != nil {
		t.Fatal("record before put")
	}
	tb.put(&assocRecord{HIT: hitN(2)})
	if !closed(absent) {
		t.Fatal("the watch of a missing record did not fire when a record was created")
	}
	_, absent = tb.watchOf(h)
	tb.put(&assocRecord{HIT: hitN(2), Info: handshake.Info{State: handshake.Established}})
	if closed(absent) {
		t.Fatal("the watch of a missing record fired on the replacement of another")
	}
	tb.put(&assocRecord{HIT: h, Info: handshake.Info{State: handshake.R2Sent}})
	if !closed(absent) {
		t.Fatal("the watch of a missing record did not fire at its creation")
	}

	r, ch := tb.watchOf(h)
	if r == nil || r.Info.State != handshake.R2Sent {
		t.Fatalf("record %+v", r)
	}
	if _, ch2 := tb.watchOf(h); ch2 != ch {
		t.Fatal("two watches of one record got two channels")
	}
	tb.put(&assocRecord{HIT: hitN(3)})
	if closed(ch) {
		t.Fatal("the watch fired on another record's creation")
	}
	tb.put(&assocRecord{HIT: h, Info: handshake.Info{State: handshake.Established}})
	if !closed(ch) {
		t.Fatal("the watch did not fire when the record was replaced")
	}
	if len(tb.watch) != 0 {
		t.Fatalf("%d watch channels left after they fired", len(tb.watch))
	}
	_, ch = tb.watchOf(h)
	tb.delete(hitN(9)) // not there: nothing fires
	if closed(ch) {
		t.Fatal("the watch fired on the removal of a missing record")
	}
	tb.delete(h)
	if !closed(ch) {
		t.Fatal("the watch did not fire when the record was removed")
	}
	if len(tb.watch) != 0 || tb.get(h) != nil {
		t.Fatalf("after delete: %d watch channels, record %v", len(tb.watch), tb.get(h))
	}
}

// TestAssocTableOrder: all returns the records in HIT order, and states
// counts them.
func TestAssocTableOrder(t *testing.T) {
	tb := newAssocTable()
	for _, n := range []byte{7, 3, 9, 1} {
		st := handshake.Established
		if n == 9 {
			st = handshake.Closed
		}
		tb.put(&assocRecord{HIT: hitN(n), Info: handshake.Info{State: st}})
	}
	var got []byte
	for _, r := range tb.all() {
		got = append(got, r.HIT[15])
	}
	if string(got) != string([]byte{1, 3, 7, 9}) {
		t.Fatalf("order %v", got)
	}
	m := tb.states()
	if m["ESTABLISHED"] != 3 || m["CLOSED"] != 1 || len(m) != 2 {
		t.Fatalf("states %v", m)
	}
}
