// Package mitm is a test-support man in the middle for hipnet's attack
// and mobility tests: an in-process UDP proxy that sits between two real nodes on
// loopback and sees, records, drops, holds, tampers with, replays and
// injects their datagrams — the attacker of DESIGN.md's threat model,
// made deterministic enough for tests.
//
// # What the room holds
//
//   - Proxy (proxy.go): one UDP socket on 127.0.0.1 in front of a target
//     node (until a Rebind gives the target side sockets of its own).
//     Datagrams from the target go to the client, the first other sender
//     (or the one set with SetClient); datagrams from anyone else go to
//     the target. A hook decides each datagram's fate (Pass, Drop, Hold
//     for Release, or Replace with a tampered copy); every datagram is
//     recorded with its direction, time and a copy of its octets, and
//     counted per direction. Inject sends octets as if the proxy forwarded
//     them; InjectFrom sends them from another loopback source address
//     (any of 127/8), so that a test can replay "from a third address" and
//     see what comes back.
//   - NAT rebinding (nat.go): Rebind and RebindTo move the proxy's
//     target-facing side to a new socket (a new port, or another 127/8
//     address), as a NAT whose mapping changed does, while the client keeps
//     talking to Addr: the target sees the client come from TargetFacing,
//     which is Addr until the first Rebind. What the target still sends to
//     the old mapping is lost (the default: the old socket is closed; or
//     dropped and counted, when the old mapping was Addr itself), or
//     forwarded to the client for a while or until Close (SetOldMapping). Datagram.Via
//     tells which of the proxy's sockets a datagram arrived at.
//   - Path control (path.go): Blackhole takes both directions down,
//     DropDirection one; what the proxy receives going a direction that is
//     down is dropped before the hook sees it, recorded and counted as
//     dropped. The hook stays set. Inject and Release are not stopped.
//   - Socket (socket.go): a UDP socket on any 127/8 address that records
//     or hands to a handler what it receives; the flood tests' senders and
//     the third addresses of InjectFrom.
//   - Kind, HIPType and SPI (classify.go): the first octets of a datagram
//     on a hipnet port tell HIP control (four zero octets, RFC 5770 §5.1),
//     ESP (a non-zero SPI, RFC 3948 §2.2) and STUN apart; HIPType reads the
//     packet type of the HIP header (RFC 7401 §5.1). Parsing parameters is
//     left to hipnet.dev/handshake/wire: this package knows no more of
//     HIP than those octets.
//
// # What it must not do
//
// It is for tests only: nothing outside _test.go files and this package's
// own tests may import it. It only ever talks to loopback: New refuses a
// target, and Listen a source address, outside 127.0.0.0/8 and ::1. It is
// bounded: each Proxy and Socket records at most MaxRecorded datagrams and
// holds at most MaxHeld (further ones are counted, not kept), keeps at
// most MaxOldMappings old mappings open, and runs exactly one goroutine
// per socket (old mappings included), which Close stops and waits for. It
// depends on the standard library alone, implements no protocol and
// decides nothing on its own: what to drop, tamper with or replay is the
// test's hook.
package mitm
