package overlay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v4"

	"hipnet.dev/nat"
)

// STUN on the node's one UDP port (RFC 8489; RFC 5770 §4.2 and §5.3): the
// Binding method only. Its encoding and decoding are package nat's, on
// pion/stun (nat.Binding, nat.BindingRequest); this file holds what needs
// the socket, a clock or a waiting caller.
//
//   - Server (Config.STUNServer, the relay's binding service): the read loop
//     answers a Binding Request with a Binding Success Response carrying the
//     request's source as XOR-MAPPED-ADDRESS, or with a 420 error response
//     when the request holds comprehension-required attributes it does not
//     know (RFC 8489 §6.3.1). It keeps no state (the Binding method is
//     idempotent, §6.3.1) and allocates nothing: nat.Binding reuses its
//     messages. An answer is at most nat.MaxGrowth octets longer than its
//     request: bounded growth, not none, which DESIGN.md's no-amplifier
//     rule asks. A standard client's bare 20-octet request draws a 52-octet
//     answer (XOR-MAPPED-ADDRESS, FINGERPRINT and the relay's instance);
//     answering only requests padded to the answer's length would shut
//     such clients out of the binding service.
//   - Client (Stack.STUNBinding): a Binding Request sent from the node's own
//     socket, so that the answer is the NAT mapping of the socket that
//     carries HIP and ESP, retransmitted as RFC 8489 §6.2.1 says, and
//     matched by transaction ID.
//
// Every response carries FINGERPRINT, and every response the client accepts
// must carry a correct one (RFC 5770 §5.3: STUN on the HIP port uses it for
// demultiplexing). Requests are checked only when they carry one, so that a
// plain STUN client can use the binding service too. Everything else STUN
// (indications, which are RFC 5770's keepalives and need no answer,
// responses nobody waits for, other methods, malformed messages, requests
// when the server is off) is counted in Drops.STUN.

var (
	// ErrSTUNTimeout: the STUN server did not answer (RFC 8489 §6.2.1: Rc
	// requests, then Rm times the RTO), or the context's deadline passed
	// first (its error is wrapped too).
	ErrSTUNTimeout = errors.New("hip: STUN binding timed out")
	// ErrSTUNFailed: the server answered with an error response, or with a
	// success response the client cannot use (no XOR-MAPPED-ADDRESS, an
	// unknown comprehension-required attribute).
	ErrSTUNFailed = nat.ErrBindingFailed
)

// RFC 8489 §6.2.1 retransmission: initial RTO (500 ms is RECOMMENDED for
// fixed-line access), Rc requests at most, then Rm times the RTO of waiting
// for the answer to the last one: requests at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and
// 31.5 s, failure at 39.5 s.
const (
	stunRTO = 500 * time.Millisecond
	stunRc  = 7
	stunRm  = 16
)

// stunState is the STUN part of a Stack.
type stunState struct {
	// scratch guards bd, the read loop's reusable decoding and encoding
	// state. The read loop is its only user in a running stack, so the lock
	// is never contended; it is there for tests that call receive directly
	// while the read loop runs.
	scratch sync.Mutex
	bd      nat.Binding

	// mu guards pending: the transactions of the running STUNBinding calls,
	// each with a channel of capacity one that receives its one result.
	mu      sync.Mutex
	pending map[[stun.TransactionIDSize]byte]stunWait

	rto time.Duration // tests: the initial RTO; 0: stunRTO
}

// stunResult is what the read loop hands a waiting STUNBinding.
// stunWait is a running STUNBinding's transaction: where its answer goes,
// and the server that must send it.
type stunWait struct {
	ch     chan<- stunResult
	server netip.AddrPort // unmapped
}

type stunResult struct {
	addr     netip.AddrPort
	instance uint64 // the server's nat.AttrInstance; 0: none
	err      error
}

// STUNBinding asks the STUN server at server for the node's server-reflexive
// address: the address and port its Binding Request came from as the server
// saw it, i.e. the NAT mapping of the node's own UDP socket, the one that
// carries HIP and ESP (RFC 5770 §4.2). The request carries FINGERPRINT and
// is retransmitted as RFC 8489 §6.2.1 says (RTO 500 ms doubling, at most 7
// requests, then 8 s of waiting) until an answer with the same transaction
// ID and a correct FINGERPRINT arrives, the context ends or the stack is
// closed. IPv4 addresses are returned unmapped. Errors wrap ErrSTUNTimeout
// (no answer, or the context's deadline), ErrSTUNFailed (an error response
// or an unusable one) or ErrClosed; a cancelled context gives its error. It
// may be called concurrently; it starts no goroutine.
func (s *Stack) STUNBinding(ctx context.Context, server netip.AddrPort) (netip.AddrPort, error) {
	r := s.stunBinding(ctx, server)
	return r.addr, r.err
}

// stunBinding is STUNBinding with the whole result.
func (s *Stack) stunBinding(ctx context.Context, server netip.AddrPort) stunResult {
	addr, inst, err := s.stunTransaction(ctx, server)
	return stunResult{addr: addr, instance: inst, err: err}
}

func (s *Stack) stunTransaction(ctx context.Context, server netip.AddrPort) (netip.AddrPort, uint64, error) {
	if s.closed.Load() {
		return netip.AddrPort{}, 0, ErrClosed
	}
	if !server.IsValid() || server.Port() == 0 {
		return netip.AddrPort{}, 0, fmt.Errorf("hip: STUN binding: invalid server address %v", server)
	}
	if err := ctx.Err(); err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("hip: STUN binding %v: %w", server, err)
	}
	server = netip.AddrPortFrom(server.Addr().Unmap(), server.Port())
	req, err := nat.BindingRequest()
	if err != nil {
		return netip.AddrPort{}, 0, err
	}
	id := req.TransactionID
	ch := make(chan stunResult, 1)
	st := &s.stun
	st.mu.Lock()
	if st.pending == nil {
		st.pending = map[[stun.TransactionIDSize]byte]stunWait{}
	}
	st.pending[id] = stunWait{ch: ch, server: unmapPort(server)}
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		delete(st.pending, id)
		st.mu.Unlock()
	}()

	rto := st.rto
	if rto <= 0 {
		rto = stunRTO
	}
	wait := rto
	for sent := 1; ; sent++ {
		if err := s.sock.writeTo(req.Raw, server); err != nil {
			s.ctr.sendErrors.Add(1)
			if s.closed.Load() {
				return netip.AddrPort{}, 0, ErrClosed
			}
			// A hard error (RFC 8489 §6.2.1: the transaction fails).
			return netip.AddrPort{}, 0, fmt.Errorf("hip: STUN binding %v: %w", server, err)
		}
		s.ctr.packetsOut.Add(1)
		s.ctr.bytesOut.Add(uint64(len(req.Raw)))
		if sent == stunRc {
			wait = stunRm * rto
		}
		select {
		case r := <-ch:
			return r.addr, r.instance, r.err
		case <-s.after(wait): // the control goroutine's timer heap (timers.go)
			if sent == stunRc {
				return netip.AddrPort{}, 0, fmt.Errorf("%w: %v: no answer to %d requests", ErrSTUNTimeout, server, stunRc)
			}
			wait *= 2
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return netip.AddrPort{}, 0, fmt.Errorf("%w: %v: %w", ErrSTUNTimeout, server, ctx.Err())
			}
			return netip.AddrPort{}, 0, fmt.Errorf("hip: STUN binding %v: %w", server, ctx.Err())
		case <-s.closing:
			return netip.AddrPort{}, 0, ErrClosed
		}
	}
}

// receiveSTUN handles a datagram that Classify took for STUN: an ICE
// connectivity check (or its answer) goes to the session of its peer
// (nat.Mux); otherwise a Binding Request is answered (Config.STUNServer), a Binding response is handed to
// the STUNBinding waiting for it; the rest is counted and dropped. It runs
// on the read loop, never blocks and keeps nothing of b.
func (s *Stack) receiveSTUN(b []byte, from netip.AddrPort) {
	if s.iceMux != nil && s.iceMux.Deliver(b, from) {
		s.ctr.iceChecks.Add(1) // a connectivity check or its answer (path.go)
		return
	}
	if s.keepaliveFrom(b, from) {
		return
	}
	st := &s.stun
	st.scratch.Lock()
	reason, err := s.handleSTUN(&st.bd, b, from)
	st.bd.Done() // its attributes alias b
	st.scratch.Unlock()
	if reason != "" {
		s.drop(&s.ctr.stun, reason, from, err)
	}
}

// handleSTUN reads b with bd (without copying it) and acts on it. It
// returns the drop reason, or "" when the message was answered or matched.
func (s *Stack) handleSTUN(bd *nat.Binding, b []byte, from netip.AddrPort) (string, error) {
	kind, err := bd.Read(b)
	switch {
	case err != nil:
		return "malformed stun", err
	case kind == nat.KindRequest:
		if !s.cfg.STUNServer {
			return "stun request, no server", nil
		}
		return s.answerSTUN(bd, from)
	case kind == nat.KindResponse:
		st := &s.stun
		id := bd.TransactionID()
		st.mu.Lock()
		w, ok := st.pending[id]
		if !ok {
			st.mu.Unlock()
			return "stun response unmatched", nil
		}
		if w.server != unmapPort(from) {
			// Not the server's: an observer who saw the request can
			// answer first from its own address (RFC 8489 §16.1.1). The
			// transaction waits on for the server's answer.
			st.mu.Unlock()
			return "stun response from elsewhere", nil
		}
		delete(st.pending, id) // one answer per transaction
		st.mu.Unlock()
		s.ctr.stunMatched.Add(1)
		addr, inst, err := bd.Response(from)
		w.ch <- stunResult{addr: addr, instance: inst, err: err} // capacity one, and only this send
		return "", nil
	case kind == nat.KindIndication: // RFC 5770 §5.3 keepalive, nothing to do
		return "stun indication", nil
	}
	return "stun method", nil
}

// answerSTUN answers the Binding Request bd read, which came from from
// (RFC 8489 §6.3.1); a relay's answer carries its instance.
func (s *Stack) answerSTUN(bd *nat.Binding, from netip.AddrPort) (string, error) {
	var inst []byte
	if s.cfg.Forwarder != nil {
		inst = s.instance[:]
	}
	resp, err := bd.Answer(from, inst)
	if err != nil {
		return "stun answer", err
	}
	if err := s.sock.writeTo(resp, from); err != nil {
		s.ctr.sendErrors.Add(1)
		return "", nil // the request was handled; the failed write is counted
	}
	s.ctr.stunAnswered.Add(1)
	s.ctr.packetsOut.Add(1)
	s.ctr.bytesOut.Add(uint64(len(resp)))
	return "", nil
}
