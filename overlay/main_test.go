package overlay

import (
	"fmt"
	"os"
	"reflect"
	"testing"
)

// TestMain runs the package's tests, then checks that none of them wrote
// to noExt, the peerExt that every peer shares until it needs its own
// (peer.go): a write there would leak one peer's relay, dial or waiters
// into every other. The whole suite exercises the writes (rekeys, dials,
// relays, rendezvous, puzzles, opportunistic peers), so it is the test.
func TestMain(m *testing.M) {
	code := m.Run()
	if !reflect.ValueOf(noExt).IsZero() {
		fmt.Fprintf(os.Stderr, "overlay: noExt was written: %+v\n", noExt)
		code = 1
	}
	os.Exit(code)
}

// TestPeerSize: the per-peer struct that every association pays for
// stays within its allocation size class; rarely needed state goes to
// peerExt.
func TestPeerSize(t *testing.T) {
	if s := reflect.TypeOf(peer{}).Size(); s > 352 {
		t.Errorf("peer is %d octets, more than the 352 of its size class: move rarely used state to peerExt", s)
	}
}
