package ratelimit

import "time"

// Table is a bounded set of Buckets by key. Buckets are held by value (16
// octets beside the key) and idle ones are swept once the table holds
// more than sweepAbove, at most once a second: what it holds follows the
// rate of new keys over the last few seconds, not every key ever seen. In
// a table full even so, keys still unknown share one bucket.
type Table[K comparable] struct {
	m           map[K]Bucket
	overflow    Bucket
	burst, rate float64
	max         int
	sweptAt     time.Time
}

// sweepAbove is the size above which a table sweeps idle buckets as it
// grows.
const sweepAbove = 1024

// NewTable returns a Table of buckets of burst tokens refilled at rate a
// second, holding at most max of them.
func NewTable[K comparable](burst, rate float64, max int) Table[K] {
	return Table[K]{m: map[K]Bucket{}, burst: burst, rate: rate, max: max}
}

// Take takes a token from k's bucket; it reports whether there was one.
func (t *Table[K]) Take(k K, now time.Time) bool {
	b, ok := t.m[k]
	if !ok {
		if len(t.m) >= min(sweepAbove, t.max) {
			t.sweep(now)
		}
		if len(t.m) >= t.max {
			return t.overflow.Take(now, t.burst, t.rate)
		}
	}
	allowed := b.Take(now, t.burst, t.rate)
	t.m[k] = b
	return allowed
}

// Len is the number of buckets held.
func (t *Table[K]) Len() int { return len(t.m) }

// sweep forgets idle buckets, at most once a second.
func (t *Table[K]) sweep(now time.Time) {
	if now.Sub(t.sweptAt) < time.Second {
		return
	}
	t.sweptAt = now
	for k, b := range t.m {
		if b.Full(now, t.burst, t.rate) {
			delete(t.m, k)
		}
	}
}
