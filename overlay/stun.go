package overlay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v4"
)

// STUN on the node's one UDP port (RFC 8489; RFC 5770 §4.2 and §5.3): the
// Binding method only, encoded and decoded by pion/stun.
//
//   - Server (Config.STUNServer, the relay's binding service): the read loop
//     answers a Binding Request with a Binding Success Response carrying the
//     request's source as XOR-MAPPED-ADDRESS, or with a 420 error response
//     when the request holds comprehension-required attributes it does not
//     know (RFC 8489 §6.3.1). It keeps no state (the Binding method is
//     idempotent, §6.3.1) and allocates nothing: the two stun.Message it
//     decodes into and encodes from are reused.
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
//
// Amplification: an answer is at most 40 octets longer than its request
// (stunMaxGrowth): a 20-octet request gets a 40-octet answer over IPv4, 52
// over IPv6; a 420 answer is 60 octets plus 2 (padded to 4) per unknown
// attribute, each of which took at least 4 octets of the request. No
// SOFTWARE attribute is added (RFC 8489 §6.3.1.1 SHOULD), so that a spoofed
// request cannot make the server send much more than it received.

var (
	// ErrSTUNTimeout: the STUN server did not answer (RFC 8489 §6.2.1: Rc
	// requests, then Rm times the RTO), or the context's deadline passed
	// first (its error is wrapped too).
	ErrSTUNTimeout = errors.New("hip: STUN binding timed out")
	// ErrSTUNFailed: the server answered with an error response, or with a
	// success response the client cannot use (no XOR-MAPPED-ADDRESS, an
	// unknown comprehension-required attribute).
	ErrSTUNFailed = errors.New("hip: STUN binding failed")
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

// stunMaxGrowth bounds how much longer an answer is than its request (see
// above; the 420 answer to a 24-octet request with one empty unknown
// attribute is the worst case, 64 octets). A relay's success answers carry
// stunAttrInstance too, 12 octets more: 52 in all over IPv6.
const stunMaxGrowth = 52

// stunReasonUnknownAttribute is the reason phrase of the 420 answer.
var stunReasonUnknownAttribute = []byte("Unknown Attribute")

// stunState is the STUN part of a Stack.
type stunState struct {
	// scratch guards in, out, ip and unknown: the read loop's reusable
	// decoding and encoding state. The read loop is their only user in a
	// running stack, so the lock is never contended; it is there for tests
	// that call receive directly while the read loop runs.
	scratch sync.Mutex
	in, out stun.Message
	ip      [16]byte
	unknown stun.UnknownAttributes

	// mu guards pending: the transactions of the running STUNBinding calls,
	// each with a channel of capacity one that receives its one result.
	mu      sync.Mutex
	pending map[[stun.TransactionIDSize]byte]chan<- stunResult

	rto time.Duration // tests: the initial RTO; 0: stunRTO
}

// stunResult is what the read loop hands a waiting STUNBinding.
type stunResult struct {
	addr     netip.AddrPort
	instance uint64 // the server's stunAttrInstance; 0: none
	err      error
}

// stunAttrInstance is a private, comprehension-optional attribute (RFC
// 8489 §18.3: 0xC000-0xFFFF) a relay adds to its Binding answers: 8
// random octets drawn when it starts. A node's keepalive to its relay is a
// Binding Request (RFC 5770 §4.7); when the instance in the answer
// changes, the relay restarted and lost its registrations, and the node
// registers again at once, where it would otherwise learn only when its
// next refresh failed. Other STUN clients ignore it.
const stunAttrInstance stun.AttrType = 0xC0A1

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
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return netip.AddrPort{}, 0, err
	}
	id := req.TransactionID
	ch := make(chan stunResult, 1)
	st := &s.stun
	st.mu.Lock()
	if st.pending == nil {
		st.pending = map[[stun.TransactionIDSize]byte]chan<- stunResult{}
	}
	st.pending[id] = ch
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
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
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
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case r := <-ch:
			return r.addr, r.instance, r.err
		case <-timer.C:
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
	reason, err := s.handleSTUN(st, b, from)
	clear(st.in.Attributes) // their values alias b
	st.in.Attributes = st.in.Attributes[:0]
	st.in.Raw = nil
	st.scratch.Unlock()
	if reason != "" {
		s.drop(&s.ctr.stun, reason, from, err)
	}
}

// handleSTUN decodes b into st.in (without copying it) and acts on it. It
// returns the drop reason, or "" when the message was answered or matched.
func (s *Stack) handleSTUN(st *stunState, b []byte, from netip.AddrPort) (string, error) {
	m := &st.in
	m.Raw = b
	if err := m.Decode(); err != nil {
		return "malformed stun", err
	}
	if m.Type.Method != stun.MethodBinding {
		return "stun method", nil
	}
	switch m.Type.Class {
	case stun.ClassRequest:
		if !s.cfg.STUNServer {
			return "stun request, no server", nil
		}
		// RFC 8489 §6.3: FINGERPRINT, when present, must be right.
		if m.Contains(stun.AttrFingerprint) {
			if err := stun.Fingerprint.Check(m); err != nil {
				return "stun fingerprint", err
			}
		}
		return s.answerSTUN(st, from)
	case stun.ClassSuccessResponse, stun.ClassErrorResponse:
		// Our requests carry FINGERPRINT; so must their answers (RFC 5770
		// §5.3).
		if err := stun.Fingerprint.Check(m); err != nil {
			return "stun fingerprint", err
		}
		st.mu.Lock()
		ch, ok := st.pending[m.TransactionID]
		if ok {
			delete(st.pending, m.TransactionID) // one answer per transaction
		}
		st.mu.Unlock()
		if !ok {
			return "stun response unmatched", nil
		}
		s.ctr.stunMatched.Add(1)
		ch <- stunBindingResult(m, from) // capacity one, and only this send
		return "", nil
	default: // indication: RFC 5770 §5.3 keepalive, nothing to do
		return "stun indication", nil
	}
}

// answerSTUN answers the Binding Request in st.in, which came from from
// (RFC 8489 §6.3.1), with st.out: 420 with UNKNOWN-ATTRIBUTES if it holds a
// comprehension-required attribute we do not know, a success response with
// XOR-MAPPED-ADDRESS otherwise; FINGERPRINT last either way.
func (s *Stack) answerSTUN(st *stunState, from netip.AddrPort) (string, error) {
	req, resp := &st.in, &st.out
	st.unknown = st.unknown[:0]
	for _, a := range req.Attributes {
		if !stunKnown(a.Type) {
			st.unknown = append(st.unknown, a.Type)
		}
	}
	resp.Reset()
	resp.TransactionID = req.TransactionID
	if len(st.unknown) == 0 {
		resp.Type = stun.BindingSuccess
		resp.WriteHeader()
		ip := from.Addr()
		var n int
		if ip.Is4() {
			a := ip.As4()
			n = copy(st.ip[:], a[:])
		} else {
			a := ip.As16()
			n = copy(st.ip[:], a[:])
		}
		if err := (stun.XORMappedAddress{IP: st.ip[:n], Port: int(from.Port())}).AddTo(resp); err != nil {
			return "stun answer", err
		}
		if s.relay != nil {
			resp.Add(stunAttrInstance, s.instance[:])
		}
	} else {
		resp.Type = stun.BindingError
		resp.WriteHeader()
		if err := (stun.ErrorCodeAttribute{Code: stun.CodeUnknownAttribute, Reason: stunReasonUnknownAttribute}).AddTo(resp); err != nil {
			return "stun answer", err
		}
		if err := st.unknown.AddTo(resp); err != nil {
			return "stun answer", err
		}
	}
	if err := stun.Fingerprint.AddTo(resp); err != nil {
		return "stun answer", err
	}
	if err := s.sock.writeTo(resp.Raw, from); err != nil {
		s.ctr.sendErrors.Add(1)
		return "", nil // the request was handled; the failed write is counted
	}
	s.ctr.stunAnswered.Add(1)
	s.ctr.packetsOut.Add(1)
	s.ctr.bytesOut.Add(uint64(len(resp.Raw)))
	return "", nil
}

// stunBindingResult reads the answer m to our Binding Request (RFC 8489
// §6.3.3, §6.3.4).
func stunBindingResult(m *stun.Message, from netip.AddrPort) stunResult {
	for _, a := range m.Attributes {
		if !stunKnown(a.Type) {
			return stunResult{err: fmt.Errorf("%w: answer from %v holds unknown attribute %v", ErrSTUNFailed, from, a.Type)}
		}
	}
	if m.Type.Class == stun.ClassErrorResponse {
		var ec stun.ErrorCodeAttribute
		if err := ec.GetFrom(m); err != nil {
			return stunResult{err: fmt.Errorf("%w: error response from %v without ERROR-CODE: %w", ErrSTUNFailed, from, err)}
		}
		return stunResult{err: fmt.Errorf("%w: error response from %v: %d %q", ErrSTUNFailed, from, ec.Code, ec.Reason)}
	}
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(m); err != nil {
		return stunResult{err: fmt.Errorf("%w: answer from %v without a usable XOR-MAPPED-ADDRESS: %w", ErrSTUNFailed, from, err)}
	}
	ip, ok := netip.AddrFromSlice(xa.IP)
	if !ok {
		return stunResult{err: fmt.Errorf("%w: answer from %v: bad XOR-MAPPED-ADDRESS", ErrSTUNFailed, from)}
	}
	r := stunResult{addr: netip.AddrPortFrom(ip.Unmap(), uint16(xa.Port))}
	if v, err := m.Get(stunAttrInstance); err == nil && len(v) == 8 {
		r.instance = binary.BigEndian.Uint64(v)
	}
	return r
}

// stunKnown says whether a Binding message may hold attribute t: every
// comprehension-optional attribute (RFC 8489 §14: ignored when unknown),
// the comprehension-required ones of RFC 8489 §18.3.1, and ICE's PRIORITY
// and USE-CANDIDATE (RFC 8445 §16.1), which RFC 5770 §5.2 connectivity
// checks carry. Authentication attributes are known but not used: the
// binding service has no credentials (RFC 8489 §6.3: known-but-unexpected
// attributes are ignored).
func stunKnown(t stun.AttrType) bool {
	switch t {
	case stun.AttrMappedAddress, stun.AttrUsername, stun.AttrMessageIntegrity,
		stun.AttrErrorCode, stun.AttrUnknownAttributes, stun.AttrRealm, stun.AttrNonce,
		stun.AttrMessageIntegritySHA256, stun.AttrPasswordAlgorithm, stun.AttrUserhash,
		stun.AttrXORMappedAddress, stun.AttrPriority, stun.AttrUseCandidate:
		return true
	}
	return t.Optional()
}
