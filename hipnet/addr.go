package hipnet

import (
	"errors"
	"strings"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// HIT is a Host Identity Tag: an ORCHIDv2 (RFC 7343) hash of a host's
// public key, 128 bits written as an IPv6 address in 2001:20::/28. It is a
// comparable value, [16]byte: HITs compare with == and can be map keys;
// the zero HIT means "unknown" (an opportunistic relay not heard from
// yet). Its methods:
//
//	String() string               the IPv6 text form, "2001:2x:..."
//	Addr() netip.Addr             the HIT as an IPv6 address
//	IsZero() bool                 whether it is the zero HIT
//	Compare(o HIT) int            -1, 0 or 1, as 128-bit unsigned integers
//	MarshalText, UnmarshalText    the text form, in JSON and other encodings
//
// HIT is an alias of the handshake's wire type, so that HITs pass between
// hipnet and the lower layers without conversion.
type HIT = wire.HIT

// ParseHIT parses a HIT in IPv6 text form; it fails unless the address is
// in the ORCHIDv2 prefix 2001:20::/28.
func ParseHIT(s string) (HIT, error) {
	h, err := wire.ParseHIT(s)
	if err != nil {
		return h, &hitError{err}
	}
	return h, nil
}

// hitError is ParseHIT's error: the wire package's, which errors.Is
// matches with ErrBadHIT, in the words of this package.
type hitError struct{ err error }

func (e *hitError) Error() string {
	return "hipnet: " + strings.TrimPrefix(e.err.Error(), "hip wire: ")
}

func (e *hitError) Unwrap() error { return e.err }

// Addr is an endpoint named by a HIT: a host and a port of the inner
// transport, as net.UDPAddr is for IP. It is a struct with two fields,
//
//	HIT  HIT // the host
//	Port int // the port of a stream or datagram endpoint, 0 to 65535
//
// and its pointer is a net.Addr:
//
//	Network() string   "hip"
//	String() string    "[HIT]:port", e.g. "[2001:2a:1b5f:9c1e:2f7b:3a4c:5d6e:7f80]:8883",
//	                   the form Dial, ParseAddr and net.SplitHostPort read
//	                   ("<nil>" for a nil *Addr)
//
// Every address a Node's connections and listeners report (LocalAddr,
// RemoteAddr, a Listener's Addr, ReadFrom) is an *Addr, and in RemoteAddr
// and ReadFrom the peer's HIT was authenticated by the base exchange:
//
//	who := c.RemoteAddr().(*hipnet.Addr).HIT
//
// Addr is an alias of the stack's own address type (package overlay) and
// not a type of its own: the stream and datagram layers underneath create
// these addresses, and an alias is what lets the type assertion above
// succeed on them.
type Addr = overlay.Addr

// ParseAddr parses `[HIT]:port` (a HIT in brackets, a colon and a port in
// decimal), or the other forms net.SplitHostPort accepts.
func ParseAddr(s string) (*Addr, error) {
	a, err := overlay.ParseAddr(s)
	if errors.Is(err, ErrBadHIT) {
		return nil, &hitError{err}
	}
	return a, err
}
