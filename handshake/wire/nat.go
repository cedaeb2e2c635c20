package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// NAT traversal mode IDs of NAT_TRAVERSAL_MODE (RFC 5770 §5.4, RFC 9028
// §5.4). 0 is reserved. RFC 9028 implementations MUST implement
// UDP-ENCAPSULATION and SHOULD implement ICE-HIP-UDP.
const (
	NATModeUDPEncapsulation uint16 = 1 // RFC 5770 §5.4
	NATModeICESTUNUDP       uint16 = 2 // "Legacy ICE-HIP", RFC 5770 §5.4
	NATModeICEHIPUDP        uint16 = 3 // "Native ICE-HIP", RFC 9028 §5.4
)

// NATModeName returns the RFC name of a NAT traversal mode ID, for printing.
func NATModeName(id uint16) string {
	switch id {
	case NATModeUDPEncapsulation:
		return "UDP-ENCAPSULATION"
	case NATModeICESTUNUDP:
		return "ICE-STUN-UDP"
	case NATModeICEHIPUDP:
		return "ICE-HIP-UDP"
	}
	return fmt.Sprintf("mode%d", id)
}

// NATTraversalMode is the NAT_TRAVERSAL_MODE parameter (RFC 5770 §5.4, RFC
// 9028 §5.4): Reserved(16) then 16-bit mode IDs, most preferred first; the
// proposed modes in R1, the selected one in I2. Non-critical; its type is
// below HIP_MAC, so HIP_MAC and the signatures cover it.
type NATTraversalMode struct {
	Modes U16List
}

// ParseNATTraversalMode parses NAT_TRAVERSAL_MODE contents: 2 reserved
// octets and at least one mode ID. A sender MUST NOT send more than six and
// a recipient MUST handle more "by accepting the first six Mode IDs and
// dropping the rest" (RFC 9028 §5.4), so Modes holds at most MaxListIDs.
// Modes aliases contents.
func ParseNATTraversalMode(contents []byte) (NATTraversalMode, error) {
	if len(contents) < 4 || len(contents)%2 != 0 {
		return NATTraversalMode{}, lengthError(ParamNATTraversalMode, len(contents), "2 reserved octets and a non-zero multiple of 2")
	}
	l := U16List(contents[2:])
	if len(l) > 2*MaxListIDs {
		l = l[: 2*MaxListIDs : 2*MaxListIDs]
	}
	return NATTraversalMode{Modes: l}, nil
}

// MakeNATTraversalMode returns a NAT_TRAVERSAL_MODE of the given modes in
// order of preference.
func MakeNATTraversalMode(modes ...uint16) NATTraversalMode {
	return NATTraversalMode{Modes: MakeU16List(modes...)}
}

func (NATTraversalMode) ParamType() ParamType { return ParamNATTraversalMode }
func (m NATTraversalMode) Len() int           { return 2 + len(m.Modes) }
func (m NATTraversalMode) Encode(b []byte)    { copy(b[2:], m.Modes) }
func (m NATTraversalMode) validate() error {
	return validateU16List(ParamNATTraversalMode, m.Modes, MaxListIDs)
}

// TransactionPacing is the TRANSACTION_PACING parameter (RFC 5770 §5.5, RFC
// 9028 §5.5): Min Ta, the smallest connectivity check pacing the sender
// would use, in milliseconds, Length 4. RFC 9028 §4.4 has Ta default to
// 50 ms and never go below 5 ms; that is for the caller to enforce.
type TransactionPacing struct {
	MinTa uint32 // milliseconds
}

// ParseTransactionPacing parses TRANSACTION_PACING contents (exactly 4
// octets).
func ParseTransactionPacing(contents []byte) (TransactionPacing, error) {
	if len(contents) != 4 {
		return TransactionPacing{}, lengthError(ParamTransactionPacing, len(contents), "4")
	}
	return TransactionPacing{MinTa: binary.BigEndian.Uint32(contents)}, nil
}

// Duration returns Min Ta as a duration.
func (p TransactionPacing) Duration() time.Duration {
	return time.Duration(p.MinTa) * time.Millisecond
}

func (TransactionPacing) ParamType() ParamType { return ParamTransactionPacing }
func (TransactionPacing) Len() int             { return 4 }
func (p TransactionPacing) Encode(b []byte)    { binary.BigEndian.PutUint32(b, p.MinTa) }

// PeerPermission is the PEER_PERMISSION parameter (RFC 9028 §5.13), which a
// data relay client sends in UPDATE to open and refresh a forwarding rule
// at its data relay server: RPort(16) | PPort(16) | Protocol(8) |
// Reserved(24) | RAddress(128) | PAddress(128) | OSPI(32) | ISPI(32),
// Length 48.
//
// §5.13 says the parameter "contains one or more sets" of these values
// but gives Length as 48, which is one set, and so does the IANA
// registration (§8). This package follows the length: one set per
// parameter, and several permissions are several PEER_PERMISSION
// parameters (RFC 7401 §5.2.1 allows repeated types).
type PeerPermission struct {
	RPort    uint16     // the server-reflexive candidate's port at the relay
	PPort    uint16     // the peer's port
	Protocol uint8      // 17, UDP
	RAddr    netip.Addr // the server-reflexive candidate's address
	PAddr    netip.Addr // the peer's address
	OSPI     uint32     // the outbound SPI the client uses for the peer
	ISPI     uint32     // the inbound SPI the client uses for the peer
}

const peerPermissionLen = 48

// ParsePeerPermission parses PEER_PERMISSION contents (exactly 48 octets).
func ParsePeerPermission(contents []byte) (PeerPermission, error) {
	if len(contents) != peerPermissionLen {
		return PeerPermission{}, lengthError(ParamPeerPermission, len(contents), "48")
	}
	return PeerPermission{
		RPort:    binary.BigEndian.Uint16(contents),
		PPort:    binary.BigEndian.Uint16(contents[2:]),
		Protocol: contents[4],
		RAddr:    addrAt(contents[8:]),
		PAddr:    addrAt(contents[24:]),
		OSPI:     binary.BigEndian.Uint32(contents[40:]),
		ISPI:     binary.BigEndian.Uint32(contents[44:]),
	}, nil
}

func (PeerPermission) ParamType() ParamType { return ParamPeerPermission }
func (PeerPermission) Len() int             { return peerPermissionLen }
func (p PeerPermission) Encode(b []byte) {
	binary.BigEndian.PutUint16(b, p.RPort)
	binary.BigEndian.PutUint16(b[2:], p.PPort)
	b[4] = p.Protocol
	putAddr(b[8:], p.RAddr)
	putAddr(b[24:], p.PAddr)
	binary.BigEndian.PutUint32(b[40:], p.OSPI)
	binary.BigEndian.PutUint32(b[44:], p.ISPI)
}
func (p PeerPermission) validate() error {
	if err := validateAddr(ParamPeerPermission, p.RAddr, "RAddress"); err != nil {
		return err
	}
	return validateAddr(ParamPeerPermission, p.PAddr, "PAddress")
}

// CandidatePriority is the CANDIDATE_PRIORITY parameter of a connectivity
// check UPDATE (RFC 9028 §5.14): the priority of a (potential)
// peer-reflexive candidate, Length 4.
type CandidatePriority struct {
	Priority uint32
}

// ParseCandidatePriority parses CANDIDATE_PRIORITY contents (exactly 4
// octets).
func ParseCandidatePriority(contents []byte) (CandidatePriority, error) {
	if len(contents) != 4 {
		return CandidatePriority{}, lengthError(ParamCandidatePriority, len(contents), "4")
	}
	return CandidatePriority{Priority: binary.BigEndian.Uint32(contents)}, nil
}

func (CandidatePriority) ParamType() ParamType { return ParamCandidatePriority }
func (CandidatePriority) Len() int             { return 4 }
func (c CandidatePriority) Encode(b []byte)    { binary.BigEndian.PutUint32(b, c.Priority) }

// Nominate is the NOMINATE parameter (RFC 9028 §5.15), which concludes
// candidate nomination: 32 reserved bits, Length 4. The text does not say
// "zero when sent, ignored when received" for this Reserved field, but that
// is what this package does with it.
type Nominate struct{}

// ParseNominate parses NOMINATE contents (exactly 4 octets).
func ParseNominate(contents []byte) (Nominate, error) {
	if len(contents) != 4 {
		return Nominate{}, lengthError(ParamNominate, len(contents), "4")
	}
	return Nominate{}, nil
}

func (Nominate) ParamType() ParamType { return ParamNominate }
func (Nominate) Len() int             { return 4 }
func (Nominate) Encode([]byte)        {}
