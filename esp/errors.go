package esp

import "errors"

// Errors returned by this package. They are plain sentinels (compare with
// errors.Is) so that the data path can return them without allocating.
var (
	// ErrShortPacket: the packet is shorter than the smallest ESP packet
	// the SA's suite can produce.
	ErrShortPacket = errors.New("esp: packet too short")
	// ErrMalformed: structure is wrong (ciphertext not a multiple of the
	// block size, bad padding, pad length past the payload).
	ErrMalformed = errors.New("esp: malformed packet")
	// ErrAuth: the ICV did not verify (RFC 4303 §3.4.4); nothing about the
	// packet may be trusted and the replay window was not touched.
	ErrAuth = errors.New("esp: integrity check failed")
	// ErrReplay: the sequence number was already received (RFC 4303 §3.4.3).
	ErrReplay = errors.New("esp: replayed packet")
	// ErrTooOld: the sequence number lies to the left of the replay window.
	ErrTooOld = errors.New("esp: sequence number outside the replay window")
	// ErrSequenceExhausted: sending another packet would make the 64-bit
	// counter cycle (RFC 4303 §3.3.3); the SA must be rekeyed.
	ErrSequenceExhausted = errors.New("esp: sequence number space exhausted, rekey required")
	// ErrBadSPI: zero SPI in a Config (RFC 3948 §2.2 reserves it as the
	// non-ESP marker), or a packet whose SPI is not this SA's.
	ErrBadSPI = errors.New("esp: bad SPI")
	// ErrUnsupportedSuite: the transform ID is not one this package runs.
	ErrUnsupportedSuite = errors.New("esp: unsupported ESP transform suite")
	// ErrKeyLength: a key's length does not match Suite.KeyLen.
	ErrKeyLength = errors.New("esp: wrong key length for suite")
	// ErrChecksum: a BEET inner UDP segment's checksum did not verify.
	ErrChecksum = errors.New("esp: bad inner UDP checksum")
)
