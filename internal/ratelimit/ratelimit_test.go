package ratelimit

import (
	"testing"
	"time"
)

// TestBucket: a new bucket gives burst tokens at once, then rate a second.
func TestBucket(t *testing.T) {
	var b Bucket
	now := time.Now()
	n := 0
	for b.Take(now, 4, 2) {
		n++
	}
	if n != 4 {
		t.Fatalf("%d tokens at once, want the burst of 4", n)
	}
	if b.Full(now, 4, 2) || !b.Full(now.Add(2*time.Second), 4, 2) {
		t.Fatal("an empty bucket full, or not full after burst/rate")
	}
	if !b.Take(now.Add(500*time.Millisecond), 4, 2) || b.Take(now.Add(500*time.Millisecond), 4, 2) {
		t.Fatal("half a second at 2/s refills one token, not more")
	}
}

// TestTableBounded: however many keys, a table holds at most max
// buckets; beyond, unknown keys share one, so they are still limited.
func TestTableBounded(t *testing.T) {
	tb := NewTable[int](2, 1, 100)
	now := time.Now()
	allowed := 0
	for k := range 10_000 {
		if tb.Take(k, now) {
			allowed++
		}
	}
	if tb.Len() > 100 {
		t.Fatalf("%d buckets, bound 100", tb.Len())
	}
	if allowed != 100+2 {
		t.Fatalf("%d allowed, want one for each of 100 keys, and 2 (a burst) for the rest together", allowed)
	}
	// Idle buckets go once the table sweeps (at most once a second).
	if !tb.Take(20_000, now.Add(5*time.Second)) || tb.Len() != 1 {
		t.Fatalf("after the sweep: %d buckets, want the new key's only", tb.Len())
	}
}
