package nat

import (
	"errors"
	"net/netip"

	"github.com/pion/stun/v4"
)

// Binding is the decoding and encoding state of one reader of the node's
// socket (the stack's read loop): what it needs to tell Binding requests,
// responses and indications apart and to answer requests (RFC 8489
// §6.3.1), reused so that it allocates nothing once warm. It is not safe
// for concurrent use.
//
// Amplification: an answer is at most MaxGrowth octets longer than its
// request: a 20-octet request gets a 40-octet answer over IPv4, 52 over
// IPv6; a 420 answer is 60 octets plus 2 (padded to 4) per unknown
// attribute, each of which took at least 4 octets of the request. No
// SOFTWARE attribute is added (RFC 8489 §6.3.1.1 SHOULD), so that a spoofed
// request cannot make the server send much more than it received.
type Binding struct {
	in, out stun.Message
	ip      [16]byte
	unknown stun.UnknownAttributes
}

// MaxGrowth bounds how much longer an answer is than its request (the 420
// answer to a 24-octet request with one empty unknown attribute is the
// worst case, 64 octets); a relay's success answers carry AttrInstance too,
// 12 octets more: 52 in all over IPv6.
const MaxGrowth = 52

// Kind is what Read found in a STUN message.
type Kind uint8

const (
	// KindOther: not a Binding message, or malformed (Read's error says).
	KindOther Kind = iota
	// KindRequest: a Binding request; Answer answers it.
	KindRequest
	// KindResponse: a Binding success or error response; Response reads it.
	KindResponse
	// KindIndication: a Binding indication, RFC 5770 §5.3's keepalive.
	KindIndication
)

// errFingerprint: a FINGERPRINT that does not verify.
var errFingerprint = errors.New("STUN FINGERPRINT does not verify")

// Read decodes b (without copying it; b must not change until Done) and
// says what it is. A request's FINGERPRINT is checked when present (so a
// plain STUN client can use the binding service); a response must carry a
// correct one (RFC 5770 §5.3: STUN on the HIP port uses it).
func (bd *Binding) Read(b []byte) (Kind, error) {
	m := &bd.in
	if err := decode(m, b); err != nil {
		return KindOther, err
	}
	if m.Type.Method != stun.MethodBinding {
		return KindOther, nil
	}
	switch m.Type.Class {
	case stun.ClassRequest:
		if m.Contains(stun.AttrFingerprint) && stun.Fingerprint.Check(m) != nil {
			return KindOther, errFingerprint
		}
		return KindRequest, nil
	case stun.ClassSuccessResponse, stun.ClassErrorResponse:
		if stun.Fingerprint.Check(m) != nil {
			return KindOther, errFingerprint
		}
		return KindResponse, nil
	}
	return KindIndication, nil
}

// TransactionID is the transaction ID of the message Read decoded.
func (bd *Binding) TransactionID() [stun.TransactionIDSize]byte { return bd.in.TransactionID }

// Response reads the response Read decoded, which came from from: see
// ReadBindingResponse.
func (bd *Binding) Response(from netip.AddrPort) (netip.AddrPort, uint64, error) {
	return ReadBindingResponse(&bd.in, from)
}

// Answer builds the answer to the request Read decoded, which came from
// from (RFC 8489 §6.3.1): 420 with UNKNOWN-ATTRIBUTES if it holds a
// comprehension-required attribute we do not know, a success response with
// XOR-MAPPED-ADDRESS otherwise (and AttrInstance when instance is set);
// FINGERPRINT last either way. The answer is valid until the next call.
func (bd *Binding) Answer(from netip.AddrPort, instance []byte) ([]byte, error) {
	req, resp := &bd.in, &bd.out
	bd.unknown = bd.unknown[:0]
	for _, a := range req.Attributes {
		if !Known(a.Type) {
			bd.unknown = append(bd.unknown, a.Type)
		}
	}
	resp.Reset()
	resp.TransactionID = req.TransactionID
	if len(bd.unknown) == 0 {
		resp.Type = stun.BindingSuccess
		resp.WriteHeader()
		ip := from.Addr()
		var n int
		if ip.Is4() {
			a := ip.As4()
			n = copy(bd.ip[:], a[:])
		} else {
			a := ip.As16()
			n = copy(bd.ip[:], a[:])
		}
		if err := (stun.XORMappedAddress{IP: bd.ip[:n], Port: int(from.Port())}).AddTo(resp); err != nil {
			return nil, err
		}
		if instance != nil {
			resp.Add(AttrInstance, instance)
		}
	} else {
		resp.Type = stun.BindingError
		resp.WriteHeader()
		if err := (stun.ErrorCodeAttribute{Code: stun.CodeUnknownAttribute, Reason: reasonUnknownAttribute}).AddTo(resp); err != nil {
			return nil, err
		}
		if err := bd.unknown.AddTo(resp); err != nil {
			return nil, err
		}
	}
	if err := stun.Fingerprint.AddTo(resp); err != nil {
		return nil, err
	}
	return resp.Raw, nil
}

// Done forgets the message Read decoded (its attributes alias b).
func (bd *Binding) Done() { release(&bd.in) }

// reasonUnknownAttribute is the reason phrase of the 420 answer.
var reasonUnknownAttribute = []byte("Unknown Attribute")
