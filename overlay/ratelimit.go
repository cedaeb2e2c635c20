package overlay

import (
	"net/netip"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/ratelimit"
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
	// r1MaxBuckets bounds each table (ratelimit.Table). Idle buckets (full
	// again) are swept as new sources come; in a table full even so,
	// sources still unknown share one bucket.
	r1MaxBuckets = 1 << 14
)

// r1Limiter decides whether an I1 from src gets an R1.
type r1Limiter struct {
	source ratelimit.Table[netip.AddrPort]
	addr   ratelimit.Table[netip.Addr]
	total  ratelimit.Bucket
}

func newR1Limiter() *r1Limiter {
	return &r1Limiter{
		source: ratelimit.NewTable[netip.AddrPort](r1SourceBurst, r1SourceRate, r1MaxBuckets),
		addr:   ratelimit.NewTable[netip.Addr](r1AddrBurst, r1AddrRate, r1MaxBuckets),
	}
}

// allow takes a token from each bucket src passes through, most specific
// first, so that a flood from one source does not drain its address's or
// the total budget.
func (l *r1Limiter) allow(src netip.AddrPort, now time.Time) bool {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	return l.source.Take(src, now) && l.addr.Take(src.Addr(), now) &&
		l.total.Take(now, r1TotalBurst, r1TotalRate)
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
	sender ratelimit.Table[wire.HIT]
	total  ratelimit.Bucket
}

func newNotifyLimiter() *notifyLimiter {
	return &notifyLimiter{sender: ratelimit.NewTable[wire.HIT](notifyBurst, notifyRate, r1MaxBuckets)}
}

func (l *notifyLimiter) allow(sender wire.HIT, now time.Time) bool {
	return l.sender.Take(sender, now) && l.total.Take(now, notifyTotalBurst, notifyTotalRate)
}
