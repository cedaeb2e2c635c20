package wire

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns wraps one of them, so a
// caller can classify a failure with errors.Is and still print a message
// that names the parameter and its octet offset.
var (
	// ErrTooShort: fewer octets than the fixed part of the structure.
	ErrTooShort = errors.New("hip wire: packet too short")
	// ErrBadLength: the HIP Header Length field is below its minimum (4) or
	// claims more octets than were received (RFC 7401 §5.1).
	ErrBadLength = errors.New("hip wire: bad header length")
	// ErrVersion: the Version field is not 2. Matched by *VersionError.
	ErrVersion = errors.New("hip wire: unsupported HIP version")
	// ErrUnknownType: a packet type RFC 7401 §5.3 does not define; the packet
	// MUST be dropped (§5.1).
	ErrUnknownType = errors.New("hip wire: unknown packet type")
	// ErrParamOrder: parameter types are not in non-decreasing order; the
	// packet is malformed and MUST be discarded (RFC 7401 §5.2.1).
	ErrParamOrder = errors.New("hip wire: parameters out of order")
	// ErrParamLength: a parameter's TLV does not fit in the packet, or its
	// contents have a length its definition does not allow.
	ErrParamLength = errors.New("hip wire: bad parameter length")
	// ErrParamValue: a field inside a parameter holds a value its definition
	// does not allow (other than a length).
	ErrParamValue = errors.New("hip wire: bad parameter value")
	// ErrTooLarge: a built packet exceeds MaxPacketLen (RFC 7401 §5.1), or a
	// parameter's contents exceed the 16-bit Length field.
	ErrTooLarge = errors.New("hip wire: packet too large")
	// ErrBuilderOrder: Builder.Add was called with a type lower than the
	// previous parameter's (RFC 7401 §5.2.1).
	ErrBuilderOrder = errors.New("hip wire: parameters added out of order")
	// ErrMarker: a UDP payload does not start with the 4-octet zero non-ESP
	// marker of RFC 5770 §5.1 / RFC 3948 §2.2.
	ErrMarker = errors.New("hip wire: missing non-ESP marker")
	// ErrChecksum: a HIP checksum that is wrong, or non-zero where it MUST
	// be zero (HIP over UDP, RFC 5770 §5.1, RFC 9028 §5.1).
	ErrChecksum = errors.New("hip wire: bad checksum")
	// ErrBadHIT: text that is not an IPv6 address in the ORCHIDv2 prefix.
	ErrBadHIT = errors.New("hip wire: not a HIT")
)

// VersionError reports a HIP header whose Version field is not 2.
// errors.Is(err, ErrVersion) is true for it.
type VersionError struct {
	Version uint8
}

func (e *VersionError) Error() string {
	if e.Version == 1 {
		// RFC 7401 §9: version 1 is RFC 5201, whose parameter layouts differ.
		return "hip wire: HIP version 1 (RFC 5201) not supported"
	}
	return fmt.Sprintf("hip wire: HIP version %d not supported", e.Version)
}

// Is makes errors.Is(err, ErrVersion) hold.
func (e *VersionError) Is(target error) bool { return target == ErrVersion }

// ParamError locates a malformed parameter: its type and the octet offset of
// its TLV inside the packet (-1 when the contents were parsed on their own).
type ParamError struct {
	Type   ParamType
	Offset int
	Err    error  // one of the sentinels above
	Detail string // what exactly is wrong
}

func (e *ParamError) Error() string {
	var loc string
	if e.Offset >= 0 {
		loc = fmt.Sprintf(" at offset %d", e.Offset)
	}
	if e.Detail == "" {
		return fmt.Sprintf("%v: %v%s", e.Err, e.Type, loc)
	}
	return fmt.Sprintf("%v: %v%s: %s", e.Err, e.Type, loc, e.Detail)
}

func (e *ParamError) Unwrap() error { return e.Err }

// lengthError builds the error the ParseXxx functions return for contents
// of a length the parameter's definition does not allow.
func lengthError(t ParamType, got int, want string) error {
	return &ParamError{Type: t, Offset: -1, Err: ErrParamLength,
		Detail: fmt.Sprintf("contents are %d octets, want %s", got, want)}
}

func valueError(t ParamType, detail string) error {
	return &ParamError{Type: t, Offset: -1, Err: ErrParamValue, Detail: detail}
}
