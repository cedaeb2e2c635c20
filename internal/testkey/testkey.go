package testkey

import (
	"sync"
	"testing"

	"hipnet.dev/handshake/hostid"
)

var (
	mu    sync.Mutex
	cache []*hostid.PrivateKey
)

// Key returns the n-th cached ECDSA P-256 identity (n ≥ 0).
func Key(t testing.TB, n int) *hostid.PrivateKey {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	for len(cache) <= n {
		k, err := hostid.Generate(hostid.ECDSAP256, nil)
		if err != nil {
			t.Fatal(err)
		}
		cache = append(cache, k)
	}
	return cache[n]
}
