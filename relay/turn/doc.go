// Package turn is the TURN service of the HIP relay (RFC 8656): it gives
// HIP hosts behind NATs relayed transport addresses to offer as relayed
// candidates (RFC 5770 §4.2), on top of pion/turn v5. Its one rule: only a
// host registered with the relay over HIP can obtain credentials, so the
// service is never an open relay.
//
// # Credentials
//
// Credentials are time-limited, in the style of the "TURN REST API"
// (draft-uberti-behave-turn-rest-00):
//
//	username = "<expiry, Unix seconds>:<HIT, RFC 5952 canonical text>"
//	password = base64(HMAC-SHA256(secret, username))
//
// e.g. "1800003600:2001:20::a". The relay hands them to a host only over
// its authenticated HIP association (ESP-protected, so the password stays
// confidential), only for that association's own HIT, and only while the
// host is registered; that plumbing lives in package relay, which calls
// Server.Credentials. A TURN client then uses them as ordinary long-term
// credentials (RFC 8489 §9.2): the password never crosses the wire, both
// sides key MESSAGE-INTEGRITY with MD5(username ":" realm ":" password)
// (RFC 8489 §9.2.2), and the server, which holds the secret, derives the
// password from the username it receives.
//
// SHA-256 instead of the draft's SHA-1: the draft picked HMAC-SHA1 so that
// web back ends and TURN servers written by different people agree; here
// the issuer and the verifier are the same program, so there is nothing to
// interoperate with, and SHA-256 is the HMAC hash of the rest of hipnet
// (HIP_MAC, RFC 7401 §5.2.12, under the mandatory HIT suite RSA,DSA/SHA-256,
// §5.2.10), with no SHA-1 deprecation to argue about. The 32-byte tag also matches the 32-byte
// minimum secret (RFC 2104 §3: a key shorter than the hash output is
// "strongly discouraged"). What protects each TURN request on the wire is
// still RFC 8489's MESSAGE-INTEGRITY (HMAC-SHA1 with the MD5-derived key),
// as pion/turn v5 does not offer MESSAGE-INTEGRITY-SHA256; the offline
// dictionary attack that RFC 8489 warns about for long-term credentials
// does not apply, because the password is a 256-bit MAC, not a word.
//
// The server accepts a request's username only if
//
//  1. it parses: a canonical decimal expiry (no sign, no leading zero), one
//     ':', and an ORCHIDv2 HIT spelt canonically, so that each (HIT,
//     expiry) has one username (else RefusedMalformed);
//  2. the expiry is after Config.Now (else RefusedExpired);
//  3. Config.Allowed(hit) says the HIT is registered (else
//     RefusedNotRegistered; nil Allowed refuses all);
//  4. MESSAGE-INTEGRITY verifies with the key derived from our secret and
//     our realm (else RefusedBadMAC: wrong password, other secret, other
//     realm).
//
// Checks 1 to 3 run in pion's AuthHandler; pion runs check 4 once the
// handler returns the key, and reports its verdict through
// EventHandler.OnAuth. Every refused request is answered 401 with a fresh
// NONCE, like a first request without credentials, so a client learns
// nothing about which check failed; each is counted in Stats. The checks
// apply to every authenticated request (Allocate, Refresh,
// CreatePermission, ChannelBind), so a host that leaves the registration
// cannot refresh its allocation or open it to new peers; Server.Revoke ends
// its allocations at once. The userID pion keeps for an allocation is the
// HIT, so a host may refresh with newer credentials.
//
// # Using it
//
// NewServer takes a Config: the UDP socket to answer on (the Server owns
// it), the address to relay from (RelayIP), the secret (random when nil),
// the Allowed callback, and optional Realm, clock, Logger, MaxAllocations,
// PeerAllowed and RelayListen. Server.Credentials issues credentials with
// the server's secret and clock, the package-level Credentials with any
// secret (another process sharing it). Stats, Revoke and Close are the
// rest. Errors of NewServer satisfy errors.Is(err, ErrConfig).
//
// # What the room holds, file by file
//
//   - credentials.go: Credentials and the username's one spelling
//     (formatUsername, parseUsername).
//   - auth.go: pion's AuthHandler (checks 1 to 3) and OnAuth (check 4).
//   - relay.go: pion's RelayAddressGenerator: the relayed sockets, opened
//     on RelayIP, counted, bounded by MaxAllocations (508 Insufficient
//     Capacity beyond it, RFC 8656 §7.2) and closed once.
//   - peers.go: pion's PermissionHandler: which peers a client may open
//     its allocation to (403 Forbidden otherwise, RFC 8656 §10.2).
//   - server.go: Server, its lifecycle and Revoke; config.go: Config and
//     its defaults; stats.go: the counters; pionlog.go: pion's logging
//     into slog; errors.go: ErrConfig.
//
// # Goroutines
//
// pion/turn runs one goroutine reading Config.Conn, which handles every
// TURN message in turn, and one per allocation reading its relayed socket;
// its timers (allocation, permission and channel lifetimes) run on the
// runtime's timer callbacks. This package starts none of its own. Close
// closes Config.Conn and every relayed socket and waits (at most five
// seconds) until no read on them is in progress; pion's goroutines then
// return at once, and a last "allocation ended" log line may follow Close.
//
// # What it must not do
//
//   - Relay for anyone without credentials from a registered host: there
//     is no anonymous or static-password mode, and no fallback when
//     Allowed is nil.
//   - Hand out credentials over the network itself: only package relay
//     does, over HIP.
//   - Relay anything but UDP: TCP allocations (RFC 6062) and TLS or DTLS
//     listeners are refused or absent (an Allocate for TCP, or for the
//     address family RelayIP is not in, gets 508).
//   - Reach into the relay's own host: by default peers on loopback and
//     RelayIP itself are refused, unless RelayIP is a loopback address (a
//     test); Config.PeerAllowed replaces that policy, never the refusal of
//     unspecified, multicast and broadcast peers.
//   - Know about HIP beyond the HIT in the username: registration,
//     lifetimes of grants and the HIP relay service are package relay's.
//
// The port also answers STUN Binding requests without credentials, as any
// STUN server does (RFC 8489); that relays nothing.
package turn
