package handshake

import (
	"runtime"
	"testing"
	"time"
	"unsafe"

	"hipnet.dev/handshake/hostid"
)

// idleAssocs is how many Initiators TestIdleAssociationSize establishes
// with one Responder: enough that the heap's own noise is a few octets an
// association.
const idleAssocs = 200

// idleAssocMax is the bound TestIdleAssociationSize holds an idle
// ESTABLISHED association to, with ECDSA P-256 on both sides and the
// defaults (AES-128-CBC for ENCRYPTED, RHASH SHA-384): the Association and
// what it alone points to. Measured at about 835 octets — the struct 320,
// KEYMAT with #I | #J 224, the HIP_MAC keys 96, the peer's Diffie-Hellman
// value 64, the peer's host identity 128 — where it was 1,875 (a struct
// of 1,016 octets) before the phase state moved out of the struct and the
// peer's key was kept encoded. A relay holds one per registered host.
const idleAssocMax = 896

// TestIdleAssociationSize measures the heap that idle ESTABLISHED
// associations retain on a Responder, the state a relay holds per
// registered host: idleAssocs base exchanges from Initiators with their
// own identities, each association completed by data (R2-SENT ends) and
// then idle, the Initiators discarded. Everything else the exchanges
// leave is shed first: the Responder's R1 generations, whose records of
// spent solutions grow with every I2, are rotated out, and the
// associations are held in a slice allocated beforehand.
func TestIdleAssociationSize(t *testing.T) {
	keys := make([]*hostid.PrivateKey, idleAssocs)
	for i := range keys {
		keys[i] = testKey(t, hostid.ECDSAP256, 2+i)
		// crypto/ecdsa caches a key's FIPS form on its first signature
		// for as long as the key lives (keyCache keeps it): not the
		// Responder's to account for.
		if _, _, err := keys[i].Sign(nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	b := newHost(t, "b", defaultCfg(testKey(t, hostid.ECDSAP256, 1)))
	held := make([]*Association, 0, idleAssocs)
	establish := func(k *hostid.PrivateKey) *Association {
		a := newHost(t, "a", defaultCfg(k))
		bex(t, a, b)
		ba := b.a(a)
		if ba == nil || ba.State() != R2Sent {
			t.Fatalf("base exchange: %v", b.errs)
		}
		ba.DataReceived(t0)
		if ba.State() != Established {
			t.Fatalf("state %v after data", ba.State())
		}
		delete(b.assoc, a.e.HIT())
		b.events, b.errs = nil, nil
		return ba
	}
	establish(testKey(t, hostid.ECDSAP256, 0)) // warm-up: lazy tables, first R1 for the group
	before := liveHeap()
	for _, k := range keys {
		held = append(held, establish(k))
	}
	// The Responder's R1 generations hold the spent solutions: rotate
	// them all out, as R1Lifetime does.
	for i := range maxPrevGens + 1 {
		if err := b.e.Rotate(t0.Add(time.Duration(i+1) * 24 * time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	after := liveHeap()
	per := (int64(after) - int64(before)) / idleAssocs
	t.Logf("%d idle ESTABLISHED associations: %d octets each; unsafe.Sizeof(Association{}) = %d",
		idleAssocs, per, unsafe.Sizeof(Association{}))
	if per > idleAssocMax {
		t.Errorf("an idle ESTABLISHED association retains %d octets, want at most %d", per, idleAssocMax)
	}
	for _, a := range held {
		if a.State() != Established {
			t.Fatalf("association in %v", a.State())
		}
	}
	runtime.KeepAlive(held)
	runtime.KeepAlive(b)
}

// liveHeap is the heap in use after two collections (the second frees
// what the first's finalizers released).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
