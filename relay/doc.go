// Package relay is the relay server behind cmd/hip-relay: a HIP host whose
// service is to let hosts behind NATs, or hosts that move, be reached by
// their HITs.
//
// It holds the whole server side, plugged into an overlay.Stack as its
// Forwarder, so that a plain node carries none of it:
//
//   - registrar.go: the registrar (RFC 8003), the one table of who is
//     registered, for what and until when: the policy (an allow-list, a
//     bound on hosts, lifetime bounds) as handshake.Registrar.Decide, and
//     RFC 9028 §7.8 (RENDEZVOUS or RELAY_UDP_HIP per association, never
//     both). Grants end with the association they were made on.
//   - control.go: what the stack hands over: control packets for other
//     HITs, relayed with RELAY_FROM / RELAY_TO and RELAY_HMAC for
//     RELAY_UDP_HIP hosts (RFC 5770 §4.5, §4.10), and I1s forwarded with
//     FROM and RVS_HMAC to RENDEZVOUS hosts (RFC 8004 §3.3, §4.2, §4.3),
//     which answer the Initiator directly.
//   - forward.go: ESP forwarding by (SPI, source address), learnt only from
//     RELAY_HMAC-checked packets, bounded and expiring; the per-host,
//     per-source I1 rate limits.
//   - self.go: the relay's own addresses, where neither RELAY_TO nor ESP
//     forwarding ever sends (and its machine, for hosts elsewhere).
//   - credentials.go: TURN credentials (relay/turn, RFC 8656) handed to
//     registered hosts over their HIP association.
//   - server.go, config.go, stats.go: the Server, its configuration and
//     counters (also reported in the stack's Status through
//     overlay.ForwarderReport).
//
// Goroutines: the stack's four (overlay doc.go: read loop, sender,
// control goroutine, echo service), plus, with Config.TURN, the credentials
// service (serveCreds) and the TURN server's (relay/turn). The forwarder
// runs on the stack's goroutines: Control, Ended and Prune on the control
// goroutine, ESP on the read loop (allocation-free).
//
// What it must not do: forward anything to or for a host that is not
// registered with it (no open relay), let an unauthenticated packet create
// or move a forwarding entry, add relay parameters to a packet that came
// with some, or give TURN credentials to anyone but a registered host. It
// has no sockets of its own beside TURN's: the stack's socket carries HIP,
// ESP and STUN.
//
// RFCs: 8003 (registration), 8004 (rendezvous), 5770 and 9028 (control
// relay, RELAY_UDP_HIP, NAT keepalives), 8656 (TURN, via relay/turn).
package relay
