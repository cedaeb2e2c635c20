package overlay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"hipnet.dev/handshake/wire"
)

// Operator views of a stack: Status for `hip status`, and an echo service
// on every stack for `hip ping`.

// Status is a snapshot of a stack for operators.
type Status struct {
	HIT           wire.HIT       `json:"hit"`
	LocalAddr     netip.AddrPort `json:"local_addr"`
	Relays        []RelayStatus  `json:"relays,omitempty"`        // Config.Relays, as a node
	Registrations []Registration `json:"registrations,omitempty"` // on a relay server: the hosts registered with it (ForwarderReport)
	Peers         []PeerInfo     `json:"peers"`
	Stats         Stats          `json:"stats"`
}

// RelayStatus is one of a node's relays.
type RelayStatus struct {
	HIT        wire.HIT       `json:"hit"` // zero until learnt, in opportunistic mode
	Addr       netip.AddrPort `json:"addr"`
	Registered bool           `json:"registered"`
	Reflexive  netip.AddrPort `json:"reflexive,omitempty"` // our address as the relay's STUN service sees it
}

// Status returns a snapshot of the stack.
func (s *Stack) Status() Status {
	st := Status{HIT: s.hit, LocalAddr: s.LocalAddr(), Peers: s.Peers(), Stats: s.Stats()}
	if r, ok := s.cfg.Forwarder.(ForwarderReport); ok {
		st.Registrations = r.Registrations()
	}
	for _, rc := range s.relays {
		r := RelayStatus{Addr: rc.cfg.Addr, Registered: rc.registered.Load()}
		r.HIT, _ = rc.HIT()
		if a := rc.srflx.Load(); a != nil {
			r.Reflexive = *a
		}
		st.Relays = append(st.Relays, r)
	}
	return st
}

// EchoPort is the inner UDP port on which every stack echoes datagrams
// back to their sender: ping over an association (`hip ping`), as ICMP
// echo is for IP. Only peers with an association (authenticated and
// authorized) can reach it, and an answer is never larger than the
// question, so it cannot amplify.
const EchoPort = 65532

// serveEcho answers EchoPort until the stack closes.
func (s *Stack) serveEcho(c *InnerConn) {
	defer s.bg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromAddr(buf)
		if err != nil {
			return
		}
		_, _ = c.WriteTo(buf[:n], &from)
	}
}

// ErrNoEcho: the peer did not answer a ping within its timeout.
var ErrNoEcho = errors.New("hip: no echo reply")

// Ping sends one echo request of size octets (at least 16) to peer and
// returns the round-trip time. The association must exist or be possible
// (Connect first to time the base exchange separately). It gives up after
// timeout with an error wrapping ErrNoEcho and os.ErrDeadlineExceeded
// (a net.Error whose Timeout is true), when ctx ends with ctx's error, and
// when the stack closes with ErrClosed.
func (s *Stack) Ping(ctx context.Context, peer wire.HIT, seq uint64, size int, timeout time.Duration) (time.Duration, error) {
	size = max(size, 16)
	c, err := s.ListenInner(0)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	req := make([]byte, size)
	binary.BigEndian.PutUint64(req, seq)
	start := time.Now()
	binary.BigEndian.PutUint64(req[8:], uint64(start.UnixNano()))
	if _, err := c.WriteTo(req, &Addr{HIT: peer, Port: EchoPort}); err != nil {
		return 0, err
	}
	deadline := start.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetReadDeadline(deadline)
	// A ctx canceled before its deadline wakes the read too.
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, size+64)
	for {
		n, from, err := c.ReadFromAddr(buf)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return 0, ctx.Err()
		case errors.Is(err, os.ErrDeadlineExceeded) && ctxDeadlinePassed(ctx):
			// ctx's deadline was the read's, and its timer has not
			// marked ctx yet.
			return 0, context.DeadlineExceeded
		case errors.Is(err, os.ErrDeadlineExceeded):
			return 0, fmt.Errorf("%w from %v (seq %d): %w", ErrNoEcho, peer, seq, err)
		default:
			return 0, err // closed
		}
		if from.HIT == peer && from.Port == EchoPort && n == size && binary.BigEndian.Uint64(buf) == seq {
			return time.Since(start), nil
		}
	}
}

// ctxDeadlinePassed reports whether ctx has a deadline and it has passed.
func ctxDeadlinePassed(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}
