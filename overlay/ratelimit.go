package overlay

import (
	"net/netip"
	"time"

	"hipnet.dev/handshake/wire"
)

// R1 rate limits (RFC 7401 §6.7, §9: a Responder should not answer I1s at
// any rate to anyone). An R1 is about 400 octets for an I1 of about 60, so
// answering every I1 would make a node a reflector that multiplies an
// attacker's traffic toward a spoofed victim. Three token buckets stand
// between an I1 and its R1, all of which it must pass:
//
//   - per source (address and port): r1SourceBurst, then r1SourceRate a
//     second. An honest Initiator sends an I1 and retransmits it after 1, 2,
//     4 ... seconds (RFC 9028 §4.2), well inside that, so its retransmitted
//     I1 still gets an R1; a flood from one socket gets a handful.
//   - per address, whatever the port: r1AddrBurst, then r1AddrRate a second,
//     generous enough for many hosts behind one NAT (hundreds of new
//     exchanges a second), while a flood from one address over many ports
//     is bounded to about 100 kB/s of R1s towards one victim. Below that
//     rate an R1 is still several times its I1: no limit can make answering
//     a slow, spread-out flood cheaper than that without refusing honest
//     hosts, so the limits bound the absolute reflection and make a fast
//     flood (the one a reflector is wanted for) unrewarding.
//   - in total: r1TotalBurst, then r1TotalRate a second: above what one
//     responder can complete (a few thousand exchanges a second), so it
//     bounds only the R1 octets a spoofed flood from many addresses can
//     draw (about 3 MB/s).
//
// Under a flood the node thus sends back far fewer octets than it receives
// (hipnet TestFloodI1Amplification), and answering an I1 stays cheap: no
// state beyond the bounded buckets, no public-key operation. Direct I1s are
// limited on the read loop, which owns one r1Limiter (receive.go admitI1),
// so a flood is shed before it reaches the control goroutine; a relayed I1
// is limited on the control goroutine, which owns another, by the address
// the relay saw it come from (RELAY_FROM), not by the relay's.

const (
	r1SourceBurst = 4
	r1SourceRate  = 2
	r1AddrBurst   = 512
	r1AddrRate    = 256
	r1TotalBurst  = 8192
	r1TotalRate   = 8192
	// r1MaxBuckets bounds each table. Above sweepAbove, idle buckets (full
	// again) are swept as new sources come; in a table full even so,
	// sources still unknown share one bucket.
	r1MaxBuckets = 1 << 14
)

type tokenBucket struct {
	tokens float64
	at     int64 // monoOf the last use; 0: never used
}

// take refills b for the time since its last use and takes one token.
func (b *tokenBucket) take(now time.Time, burst, rate float64) bool {
	t := monoOf(now)
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

// full reports whether b has refilled to burst by now: it is idle and can
// be forgotten without changing any decision.
func (b *tokenBucket) full(now time.Time, burst, rate float64) bool {
	return b.tokens+time.Duration(monoOf(now)-b.at).Seconds()*rate >= burst
}

// bucketTable is a bounded set of buckets by key. Buckets are held by
// value (16 octets beside the key) and idle ones are swept once the table
// holds more than sweepAbove, at most once a second: what it holds follows
// the rate of new sources over the last few seconds, not every source
// ever seen (a relay meets each of its registered hosts once).
type bucketTable[K comparable] struct {
	m           map[K]tokenBucket
	overflow    tokenBucket
	burst, rate float64
	sweptAt     time.Time
}

// sweepAbove is the size above which a table sweeps idle buckets as it
// grows.
const sweepAbove = 1024

func newBucketTable[K comparable](burst, rate float64) bucketTable[K] {
	return bucketTable[K]{m: map[K]tokenBucket{}, burst: burst, rate: rate}
}

func (t *bucketTable[K]) take(k K, now time.Time) bool {
	b, ok := t.m[k]
	if !ok {
		if len(t.m) >= sweepAbove {
			t.sweep(now)
		}
		if len(t.m) >= r1MaxBuckets {
			return t.overflow.take(now, t.burst, t.rate)
		}
	}
	allowed := b.take(now, t.burst, t.rate)
	t.m[k] = b
	return allowed
}

// sweep forgets idle buckets, at most once a second.
func (t *bucketTable[K]) sweep(now time.Time) {
	if now.Sub(t.sweptAt) < time.Second {
		return
	}
	t.sweptAt = now
	for k, b := range t.m {
		if b.full(now, t.burst, t.rate) {
			delete(t.m, k)
		}
	}
}

// r1Limiter decides whether an I1 from src gets an R1.
type r1Limiter struct {
	source bucketTable[netip.AddrPort]
	addr   bucketTable[netip.Addr]
	total  tokenBucket
}

func newR1Limiter() *r1Limiter {
	return &r1Limiter{
		source: newBucketTable[netip.AddrPort](r1SourceBurst, r1SourceRate),
		addr:   newBucketTable[netip.Addr](r1AddrBurst, r1AddrRate),
	}
}

// allow takes a token from each bucket src passes through, most specific
// first, so that a flood from one source does not drain its address's or
// the total budget.
func (l *r1Limiter) allow(src netip.AddrPort, now time.Time) bool {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	return l.source.take(src, now) && l.addr.take(src.Addr(), now) &&
		l.total.take(now, r1TotalBurst, r1TotalRate)
}

// NOTIFY limits. A NOTIFY carries HIP_SIGNATURE and no HIP_MAC (RFC 7401
// §5.3.6), so every one that claims a peer we know costs a signature
// check on the control goroutine (some 150 µs), whoever sent it: a flood
// of forged NOTIFYs with a known peer's HIT would keep that goroutine
// busy and fill the queue of known peers' packets, so that their
// UPDATEs, CLOSE_ACKs and R2s were dropped. NOTIFYs are rare and only
// inform (a refusal, an error), so the read loop lets through at most
// notifyBurst, then notifyRate a second, per claimed sender, and
// notifyTotalBurst, then notifyTotalRate a second, in all: a flood costs
// the control goroutine a few milliseconds a second at most. An honest
// NOTIFY lost to a flood leaves the exchange or association to its
// timers, as a lost packet would.
const (
	notifyBurst      = 8
	notifyRate       = 2
	notifyTotalBurst = 64
	notifyTotalRate  = 32
)

// notifyLimiter decides whether a NOTIFY claiming sender is checked.
type notifyLimiter struct {
	sender bucketTable[wire.HIT]
	total  tokenBucket
}

func newNotifyLimiter() *notifyLimiter {
	return &notifyLimiter{sender: newBucketTable[wire.HIT](notifyBurst, notifyRate)}
}

func (l *notifyLimiter) allow(sender wire.HIT, now time.Time) bool {
	return l.sender.take(sender, now) && l.total.take(now, notifyTotalBurst, notifyTotalRate)
}
