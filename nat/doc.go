// Package nat runs the ICE connectivity checks of HIP NAT traversal over
// the node's one UDP socket: which transport address pair a HIP
// association sends its ESP on, when the base exchange went through a
// relay (RFC 5770 §4.6, RFC 9028 §4.6, RFC 8445 §7 and §8).
//
// # What the room holds
//
//   - ufrag.go: the RFC 5770 §5.2 credentials: the username fragment is the
//     last 32 bits of a HIT in lowercase hex, the password the 128-bit STUN
//     key from KEYMAT in lowercase hex.
//   - candidate.go: ICE candidates as LOCATOR_SET transport locators (RFC
//     5770 §5.7, RFC 9028 §5.7) and their RFC 8445 §5.1.2 priorities.
//   - session.go: Session, the checks with one peer. A pion/ice agent does
//     them: checklist, checks, nomination (regular, as RFC 5770 §4.6 says
//     it SHOULD be), role, MESSAGE-INTEGRITY and FINGERPRINT. The session
//     gives it its credentials and the peer's candidates, paces its checks
//     (Ta, RFC 5770 §4.6 and RFC 9028 §4.4), and reports the selected pair
//     or the failure by callback.
//   - vconn.go: the virtual net.PacketConn behind the agent's one local
//     host candidate (ice.Agent.AddVirtualCandidate): writes go to the
//     node's send function, reads are the packets the node delivers.
//   - mux.go: Mux, which routes the STUN packets the node reads among its
//     sessions: requests by USERNAME, responses by transaction ID.
//   - stun.go: all of the node's STUN (RFC 8489) on pion/stun: the
//     framing rule the demultiplexer applies (IsSTUN), decoding into
//     reused messages without copying, the Binding client's request and
//     the reading of its answer (BindingRequest, ReadBindingResponse).
//   - binding.go: Binding, the read loop's reusable state that tells
//     Binding requests, responses and indications apart and answers
//     requests (the binding service of RFC 5770 §4.2), allocation-free
//     once warm and never more than MaxGrowth octets longer than the
//     request.
//   - keepalive.go: the RFC 5770 §5.3 keepalive, a Binding Indication with
//     only FINGERPRINT, and IsKeepalive, which recognises one.
//   - nonet.go, log.go: what keeps pion inside the room (a network with no
//     interfaces that refuses every socket) and its logs (to log/slog).
//
// # What it must not do
//
// It opens no socket and reads none: the node owns the socket, reads it,
// tells STUN from HIP and ESP (RFC 5770 §5.3, with IsSTUN), and hands STUN
// to Mux.Deliver or its Binding;
// the sessions write through the node's Send function. pion never gathers
// candidates (no host sockets, no STUN or TURN servers, no mDNS): the
// node's candidates travel in its LOCATOR_SET, built by the handshake
// from Locators, and the peer's come back through FromLocators. It never
// reads or writes ESP or HIP, and keeps no HIP state: it does not send the
// CONNECTIVITY_CHECKS_FAILED notification (RFC 5770 §4.6, §5.10) nor
// decide that ESP may flow; the node does, on the callbacks. The
// ice.Conn pion returns is never used for data: ESP goes on the node
// socket to the selected address.
//
// # RFC sections
//
//   - RFC 5770 §4.6: checks as in ICE, one component, regular nomination,
//     pacing and the RTO formula.
//   - RFC 5770 §4.7 and §5.3: keepalives (built here, sent by the node).
//   - RFC 5770 §5.2: username fragments, password, PRIORITY, the
//     Initiator controls; ICE-CONTROLLING and ICE-CONTROLLED are sent (pion
//     sends them), as the section says they SHOULD be.
//   - RFC 5770 §5.7 (RFC 9028 §5.7): transport locators, Kind, Priority.
//   - RFC 9028 §4.4: Ta of 50 ms when none was negotiated, 5 ms at least.
//   - RFC 8445 §5.1.2 (priorities), §7 (checks), §8 (nomination), through
//     pion/ice.
package nat
