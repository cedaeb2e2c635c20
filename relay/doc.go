// Package relay is the library behind cmd/hip-relay: a HIP host whose
// service is to let hosts behind NATs be reached by their HITs.
//
// It holds policy, not protocol. The protocol lives below it: overlay's
// relay role (RFC 5770 control relay, RFC 8004 rendezvous, ESP forwarding
// by SPI, the STUN binding service on the HIP port) and handshake's RFC
// 8003 registration. This package decides who may register (an allow-list,
// a total bound, lifetime bounds), runs the optional TURN service
// (relay/turn) and hands its credentials only to registered hosts, over
// their HIP association, and reports counters.
//
// What it must not do: forward anything for a host that is not registered
// with it, or give TURN credentials to anyone but a registered host.
//
// RFCs: 8003 (registration: REG_INFO, REG_REQUEST, REG_RESPONSE,
// REG_FAILED, lifetimes), 8004 (rendezvous), 5770 (RELAY_UDP_HIP, NAT
// keepalives), 8656 (TURN, via relay/turn).
package relay
