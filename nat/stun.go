package nat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/pion/stun/v4"
)

// STUN (RFC 8489) on the node's one UDP port, all of it on pion/stun: the
// demultiplexing rule (IsSTUN), the reading of ICE checks (Mux), the
// Binding service's answers (Answer), the Binding client's request and the
// reading of its answer (BindingRequest, ReadBindingResponse), and the
// keepalives of RFC 5770 §5.3 (Keepalive). Sockets, retransmission clocks
// and waiting callers are the stack's (overlay/stun.go).

// ErrBindingFailed: a Binding answer the client cannot use (an error
// response, no XOR-MAPPED-ADDRESS, an unknown comprehension-required
// attribute).
var ErrBindingFailed = errors.New("hip: STUN binding failed")

// stunHeaderLen is the fixed STUN header (RFC 8489 §5).
const stunHeaderLen = 20

// IsSTUN reports whether b is exactly one STUN message as RFC 8489 §5
// frames it: the two most significant bits zero, the magic cookie at
// octets 4..8, and a Message Length, a multiple of 4, equal to the octets
// after the 20-octet header. The length check goes beyond "cookie and two
// zero bits" (stun.IsMessage): an ESP packet whose SPI has its top two bits
// clear and whose sequence number happens to equal the cookie would
// otherwise be taken for STUN. It never allocates or panics.
func IsSTUN(b []byte) bool {
	if !stun.IsMessage(b) || b[0]&0xc0 != 0 {
		return false
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	return n%4 == 0 && n == len(b)-stunHeaderLen
}

// decode decodes b into m without copying it: m's attributes alias b until
// release. It takes only what IsSTUN accepts.
func decode(m *stun.Message, b []byte) error {
	if !IsSTUN(b) {
		return errors.New("not a STUN message")
	}
	m.Raw = b
	return m.Decode()
}

// release forgets what decode left in m, keeping its capacity, so that m
// can be reused without allocating and keeps nothing of b.
func release(m *stun.Message) {
	clear(m.Attributes)
	m.Attributes = m.Attributes[:0]
	m.Raw = nil
}

// isBindingRequest reports whether b is a STUN Binding request, and its
// transaction ID, without allocating.
func isBindingRequest(b []byte) ([stun.TransactionIDSize]byte, bool) {
	if !IsSTUN(b) {
		return [stun.TransactionIDSize]byte{}, false
	}
	var t stun.MessageType
	t.ReadValue(binary.BigEndian.Uint16(b[0:2]))
	var id [stun.TransactionIDSize]byte
	copy(id[:], b[8:stunHeaderLen])
	return id, t.Method == stun.MethodBinding && t.Class == stun.ClassRequest
}

// AttrInstance is a private, comprehension-optional attribute (RFC 8489
// §18.3: 0xC000-0xFFFF) a relay adds to its Binding answers: 8 random octets
// drawn when it starts. A node's keepalive to its relay is a Binding Request
// (RFC 5770 §4.7); when the instance in the answer changes, the relay
// restarted and lost its registrations, and the node registers again at
// once. Other STUN clients ignore it.
const AttrInstance stun.AttrType = 0xC0A1

// Known says whether a Binding message may hold attribute t: every
// comprehension-optional attribute (RFC 8489 §14: ignored when unknown),
// the comprehension-required ones of RFC 8489 §18.3.1, and ICE's PRIORITY
// and USE-CANDIDATE (RFC 8445 §16.1), which RFC 5770 §5.2 connectivity
// checks carry. Authentication attributes are known but not used: the
// binding service has no credentials (RFC 8489 §6.3: known-but-unexpected
// attributes are ignored).
func Known(t stun.AttrType) bool {
	switch t {
	case stun.AttrMappedAddress, stun.AttrUsername, stun.AttrMessageIntegrity,
		stun.AttrErrorCode, stun.AttrUnknownAttributes, stun.AttrRealm, stun.AttrNonce,
		stun.AttrMessageIntegritySHA256, stun.AttrPasswordAlgorithm, stun.AttrUserhash,
		stun.AttrXORMappedAddress, stun.AttrPriority, stun.AttrUseCandidate:
		return true
	}
	return t.Optional()
}

// BindingRequest builds a Binding Request with a fresh transaction ID and
// FINGERPRINT (RFC 5770 §5.3: STUN on the HIP port carries it).
func BindingRequest() (*stun.Message, error) {
	return stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
}

// ReadBindingResponse reads m, the answer to our Binding Request from
// from (RFC 8489 §6.3.3, §6.3.4): the server-reflexive address, unmapped,
// and the relay instance (AttrInstance; 0 when absent). Errors wrap
// ErrBindingFailed.
func ReadBindingResponse(m *stun.Message, from netip.AddrPort) (netip.AddrPort, uint64, error) {
	for _, a := range m.Attributes {
		if !Known(a.Type) {
			return netip.AddrPort{}, 0, fmt.Errorf("%w: answer from %v holds unknown attribute %v", ErrBindingFailed, from, a.Type)
		}
	}
	if m.Type.Class == stun.ClassErrorResponse {
		var ec stun.ErrorCodeAttribute
		if err := ec.GetFrom(m); err != nil {
			return netip.AddrPort{}, 0, fmt.Errorf("%w: error response from %v without ERROR-CODE: %w", ErrBindingFailed, from, err)
		}
		return netip.AddrPort{}, 0, fmt.Errorf("%w: error response from %v: %d %q", ErrBindingFailed, from, ec.Code, ec.Reason)
	}
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(m); err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("%w: answer from %v without a usable XOR-MAPPED-ADDRESS: %w", ErrBindingFailed, from, err)
	}
	ip, ok := netip.AddrFromSlice(xa.IP)
	if !ok {
		return netip.AddrPort{}, 0, fmt.Errorf("%w: answer from %v: bad XOR-MAPPED-ADDRESS", ErrBindingFailed, from)
	}
	var inst uint64
	if v, err := m.Get(AttrInstance); err == nil && len(v) == 8 {
		inst = binary.BigEndian.Uint64(v)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(xa.Port)), inst, nil
}
