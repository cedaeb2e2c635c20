// Package esp holds hipnet's ESP security associations: the transforms
// HIP negotiates (RFC 7402 §5.1.2), 64-bit extended sequence numbers, the
// anti-replay window, the BEET inner segment and the key log line that lets
// Wireshark decrypt a capture.
//
// The room is sans-I/O. It opens no sockets, starts no goroutines, reads no
// clock and keeps no global state beyond constants: the caller hands in
// keys and packets and gets back packets, payloads and errors. The only
// read from outside is key setup: NewOutbound draws a 16-octet IV key for
// the CBC suites from Config.Rand (crypto/rand when nil). Demultiplexing,
// SA lookup by SPI, UDP framing and rekey timers live in overlay/ and
// handshake/.
//
// What it implements:
//
//   - RFC 4303 §2 packet format (SPI | Sequence Number | IV | payload |
//     padding | Pad Length | Next Header | ICV), §2.4 padding with the
//     default 1, 2, 3, … contents, checked on receipt.
//   - RFC 4303 §2.2.1 and §3.3.2 extended sequence numbers, which RFC 7402
//     §3.3.6 makes mandatory for HIP: only the low 32 bits travel; the high
//     32 bits enter the ICV (appended after the packet for HMAC, §3.3.2.1)
//     or the AAD (RFC 4106 §5 for GCM). The receiver reconstructs them with
//     RFC 4303 Appendix A2.2, with one deliberate difference: a number more
//     than 2^31 ahead of the window counts as too old (serial number
//     arithmetic, RFC 1982) rather than as a jump into the next subspace, so
//     stale packets get ErrTooOld without an ICV computation (replay.go).
//   - RFC 4303 §3.3.3 sequence counter that never cycles (ErrSequenceExhausted)
//     and a rekey threshold (Outbound.NeedsRekey) well before 2^32.
//   - RFC 4303 §3.4.3 anti-replay, using the RFC 6479 ring of 64-bit blocks
//     without bit shifting; the window moves only after the ICV verified.
//   - Transforms: NULL with HMAC-SHA-256-128 (RFC 2410, RFC 4868),
//     AES-128/256-CBC with HMAC-SHA-256-128 (RFC 3602, RFC 4868) and
//     AES-128-GCM with a 16-octet ICV (RFC 4106).
//   - RFC 7402 Appendix B BEET semantics: the ESP payload is a transport
//     segment between the two HITs; for UDP, AppendUDP and ParseUDP build
//     and check it with the HIT pseudo-header checksum (RFC 7401 §4.5.1).
//
// Seal and Open allocate nothing when the caller's buffer has room, and are
// safe for concurrent use.
package esp
