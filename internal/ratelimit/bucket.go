package ratelimit

import "time"

// Bucket is a token bucket: burst tokens, refilled at rate a second. The
// zero Bucket is full. It takes 16 octets.
type Bucket struct {
	tokens float64
	at     int64 // mono of the last use; 0: never used
}

// epoch makes times monotonic integers (mono), cheaper to keep than a
// time.Time.
var epoch = time.Now()

func mono(t time.Time) int64 { return int64(t.Sub(epoch)) + 1 }

// Take refills b for the time since its last use and takes one token; it
// reports whether there was one.
func (b *Bucket) Take(now time.Time, burst, rate float64) bool {
	t := mono(now)
	if b.at == 0 {
		b.tokens = burst
	} else if d := t - b.at; d > 0 {
		b.tokens = min(burst, b.tokens+time.Duration(d).Seconds()*rate)
	}
	b.at = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Full reports whether b has refilled to burst by now: it is idle and can
// be forgotten without changing any decision.
func (b *Bucket) Full(now time.Time, burst, rate float64) bool {
	return b.at == 0 || b.tokens+time.Duration(mono(now)-b.at).Seconds()*rate >= burst
}
