package hostid

import (
	"sync"
	"testing"
)

// testKeyTypes are the key types the round-trip tests and benchmarks cover.
var testKeyTypes = []KeyType{ECDSAP256, ECDSAP384, RSA2048, RSA3072}

var (
	testKeysMu sync.Mutex
	testKeys   = map[KeyType]*PrivateKey{}
)

// testKey returns one generated key per type, shared by all tests and
// benchmarks of the binary: RSA key generation is slow on a shared machine.
func testKey(tb testing.TB, t KeyType) *PrivateKey {
	tb.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if k := testKeys[t]; k != nil {
		return k
	}
	k, err := Generate(t, nil)
	if err != nil {
		tb.Fatalf("Generate(%v): %v", t, err)
	}
	testKeys[t] = k
	return k
}
