package handshake

import (
	"crypto/rand"
	"math/big"
	"testing"

	"hipnet.dev/handshake/wire"
)

// TestMODPSubgroupCheck: for the safe primes of RFC 3526, the Jacobi
// symbol that shared checks gives what RFC 2785's y^q = 1 mod p gives,
// for values in the subgroup (public values), outside it, and at random.
func TestMODPSubgroupCheck(t *testing.T) {
	for _, g := range []*modpGroup{modp1536, modp3072} {
		q := new(big.Int).Rsh(g.p, 1)
		one := big.NewInt(1)
		check := func(y *big.Int) {
			t.Helper()
			want := new(big.Int).Exp(y, q, g.p).Cmp(one) == 0
			k := &modpKey{g: g, x: big.NewInt(3)}
			_, err := k.shared(y.FillBytes(make([]byte, g.len)))
			if got := err == nil; got != want {
				t.Fatalf("group %d, y = %x…: accepted %v, y^q = 1 is %v", g.gid, y.Bytes()[:4], got, want)
			}
		}
		for range 20 {
			key, err := g.generate(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			y := new(big.Int).SetBytes(key.public())
			check(y)                        // in the subgroup
			check(new(big.Int).Sub(g.p, y)) // p-y: outside it (-1 is not a residue)
			r, _ := rand.Int(rand.Reader, new(big.Int).Sub(g.p, big.NewInt(3)))
			check(r.Add(r, big.NewInt(2))) // at random in [2, p-2]
		}
	}
}

// BenchmarkShared: the Responder's Diffie-Hellman work for one I2, by
// group (what a solved puzzle buys; load.go weighs it).
func BenchmarkShared(b *testing.B) {
	for _, gid := range []uint8{wire.DHGroupP256, wire.DHGroupP384, wire.DHGroupMODP1536, wire.DHGroupMODP3072} {
		g := lookupGroup(gid)
		r, _ := g.generate(rand.Reader)
		i, _ := g.generate(rand.Reader)
		b.Run(wire.DHGroupName(gid), func(b *testing.B) {
			for b.Loop() {
				if _, err := r.shared(i.public()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
