// Package locator holds one peer's locators and decides which one carries
// the association: the current path, direct, through an ICE-nominated pair
// or through a relay; when to verify a new address; when to send
// keepalives; when the current path has failed and which standby takes
// over; when to move back. It implements the locator rules of HIP
// mobility and multihoming (RFC 8046, RFC 8047) and the keepalive and
// relay rules of HIP NAT traversal (RFC 5770) that concern the choice of
// path.
//
// # What the room holds
//
//   - Set (set.go; how locators are learnt and lost, learn.go): up to
//     MaxLocators locators of one peer, each an address and port with a
//     Kind (Direct, ICE, Relayed), an Origin (configured, LOCATOR_SET,
//     packet source, ICE, relay), a State, a preference and a lifetime;
//     exactly one of them current when any is usable, the others
//     standbys. Events come in as methods that take
//     the time: Configure, Established, ApplyLocatorSet, Nominated,
//     NominationLost, RelayUp, RelayDown, Remove, Received,
//     ReceivedKeepalive, Sent, Verified, VerifyFailed, HandleTimeout.
//     Decisions come out (decision.go): SendProbe, SendKeepalive and
//     Switch; Deadline says when HandleTimeout is next due.
//   - The states (locator.go): UNVERIFIED, ACTIVE and DEPRECATED of RFC
//     8046 §5.1 with its transitions, and Failed: UNVERIFIED again after a
//     check went unanswered (§5.1 "ACTIVE to UNVERIFIED"), with a back-off.
//   - The ranking of locators and the choice of the current one
//     (select.go), RFC 8046 §5.5 and RFC 8047 §5.4.
//   - Failure detection and address verification (failure.go), the
//     timers (timers.go) and credit-based authorization (credit.go).
//
// # What it must not do
//
// The room is sans-I/O, like handshake/ and esp/: it opens no sockets,
// starts no goroutines, reads no clock (time is passed in) and draws no
// random numbers (probe nonces are the caller's). It builds no packets:
// the caller turns SendProbe into an UPDATE with ECHO_REQUEST_SIGNED (or
// another authenticated exchange), SendKeepalive into an ESP dummy packet,
// and Switch into a new destination for its ESP and control packets. It
// imports only the wire format (LOCATOR_SET, HITs) and the standard
// library; never overlay/, nat/, streams/ or hipnet/. A Set is not safe
// for concurrent use: one goroutine owns it, or a lock guards it.
//
// # Rules and where they come from
//
//   - States and transitions: RFC 8046 §5.1. A new locator is UNVERIFIED
//     (§5.4), becomes ACTIVE when verified, DEPRECATED when its lifetime
//     (§4) ends, UNVERIFIED again when the peer renews a DEPRECATED one
//     (§5.1, §5.3). The base exchange's locator is ACTIVE, preferred and
//     unbounded (§5.1 last paragraph, RFC 8047 §4.2.3): Established.
//   - LOCATOR_SET processing: RFC 8046 §5.3 and RFC 8047 §5.2 (listed
//     locators added or renewed, announced ones missing deprecated,
//     duplicates not reprocessed, no multicast or broadcast), §4.1 (the P
//     bit scoped by Traffic Type), §4 (the lifetime; the maximum is
//     unbounded, §5.1). Transport locators (RFC 5770 §5.7) are ICE's.
//   - Verification: RFC 8046 §5.4. Every address is verified before
//     traffic goes there; the configured locator carries the base exchange
//     unverified because the exchange is its verification. ICE's checks
//     verify the nominated pair (RFC 5770 §4.6); a relay registration
//     verifies the relay (RFC 8003, RFC 5770 §4.1).
//   - Changing the current locator: RFC 8046 §5.5 and RFC 8047 §5.4: to a
//     better ACTIVE one at once, to a better UNVERIFIED one once verified,
//     away from a DEPRECATED one when a usable alternative exists.
//   - Credit-based authorization: RFC 8046 §3.3.2, §5.6.1 (Allow), with
//     the credit aging of §5.6.2 (7/8 every 5 s). Probes to an unverified
//     packet source are paid for too (AllowProbe): DESIGN.md's threat
//     model, "a node never answers more octets than it received from an
//     unverified address".
//   - NAT rebinding: RFC 8046 §5.3 ("MAY add the source IP address of a
//     received HIP packet as a candidate locator ... SHOULD prefer
//     locators explicitly listed"). Authenticated traffic from a new
//     address makes it an UNVERIFIED candidate; the path moves there only
//     when it is verified and the peer no longer sends from the current
//     locator (as QUIC does, RFC 9000 §9.3). A packet copied and sent from
//     a third address makes that address a candidate at most; unanswered,
//     it fails, and the path never moves.
//   - Failure detection and failover: RFC 8047 §4.2.2 leaves "path failure
//     detection" to the implementation ("reachability checks, or other
//     means"); §4.2.3 wants alternatives used on failure. The rule here is
//     WireGuard's (a sender that hears nothing back is suspicious; a
//     receiver that has nothing to send answers with a keepalive), scaled
//     to a sub-second failover, with RFC 8046 §5.4 probes as the check.
//   - Keepalives: RFC 5770 §4.7 (every 15 s on an idle path; a relay MAY
//     refrain), as ESP dummy packets (RFC 4303 §2.6), which are
//     authenticated and so prove a path, unlike STUN indications. An ICE
//     pair gets them even when traffic fell back to the relay, so that
//     its NAT mappings stay open and the peer's keepalives on it show when
//     it works again (which a check then confirms before traffic moves
//     back).
//   - The relay and the ICE pair (RFC 5770 §4.6, §4.7): the pair ICE
//     nominated ranks above the relay; since both ends keep it alive,
//     the peer's silence on it for Config.PairSilence makes it suspect
//     even while we send nothing, and when its check fails traffic falls
//     back to the relay (ReasonFallback) before the application needs
//     it. The caller rekeys through the relay then: it forwards ESP by
//     SPI, learnt from the control packets it relays. The peer's packets
//     arriving through the relay while another path is current tell
//     that the peer gave that path up (RFC 5770 §4.10): the path is
//     checked at once, by a probe that only its answer ends, at most
//     once per RecoveryMin (a path dark one way is found so, though the
//     peer's keepalives still arrive on it).
//
// # Timing
//
// The goal (DESIGN.md): when the current path dies, traffic is on a
// verified standby or the relay within 1 s, without probes and keepalives
// that cost anything on a healthy path.
//
// The gap from the first packet sent into a dead path to the Switch is
// SilenceTimeout + ProbeCount × ProbeInterval = 250 ms + 3 × 200 ms =
// 850 ms. On a slower path the bounds stretch with the measured round
// trip r (silence max(250 ms, 2r + AckDelay), probe interval max(200 ms,
// 1.5r)), so the gap stays under 1 s for r up to about 135 ms and is never
// shorter than the path allows: a slow path is not declared dead. (What
// overlay did before: 45 s, max(4 s, 3 × the 15 s keepalive interval),
// looked at once a second.)
//
//   - SilenceTimeout 250 ms: a healthy path answers within a round trip
//     plus the peer's AckDelay, so 250 ms is not reached on paths up to
//     about 150 ms. Reaching it costs one probe, not a switch.
//   - ProbeInterval 200 ms, ProbeCount 3: a switch needs three probes in a
//     row unanswered (at 1 % loss each way, about one check in a hundred
//     thousand on a healthy path); one lost probe or one late answer never
//     moves the path.
//   - AckDelay 100 ms: a peer that receives and has nothing to send
//     answers with one ESP dummy packet after 100 ms, so the sender's
//     silence timer does not fire. Bidirectional traffic (QUIC
//     acknowledgements, requests and responses) sends none; a one-way
//     stream costs at most ten small packets a second back. A keepalive
//     is never answered by one. (A peer that does not run this package
//     sends none; a one-way stream to it costs a probe exchange every
//     SilenceTimeout or so instead.)
//   - KeepaliveInterval 15 s: RFC 5770 §4.7's MUST for an idle path, and
//     no shorter: detection is driven by traffic, not by keepalives, so an
//     idle association (an IoT device) costs one packet in 15 s.
//   - RecoveryMin 1 s doubling to RecoveryMax 15 s: a failed path that
//     would be preferred is checked 1, 2, 4, 8, 15, 15 ... seconds after it
//     failed, at most ProbeCount probes each time, while the association is
//     in use, so traffic moves back within about a second after a short
//     outage and within 15 s after a long one; sooner when the peer's
//     packets come back on it.
//   - StandbyInterval 15 s: while the association is in use, the standby a
//     failure would move to is checked when its last answer is 15 s old,
//     so the failover lands on a path known to work (and its NAT mapping
//     is refreshed); only that one standby, so the cost does not grow with
//     the number of locators.
//   - PairSilence 45 s (3 × KeepaliveInterval, at least 1 s): an idle ICE
//     pair that carried none of the peer's keepalives for two intervals
//     and more is checked, and the association falls back to the relay
//     after ProbeCount unanswered probes. A pair in use is watched like
//     any current path (SilenceTimeout), within the second.
//
// # Use
//
// Before the association: Configure the peer's known addresses, or
// RelayUp the relay to reach it through; Current is where the base
// exchange goes, and VerifyFailed moves a dial that gave up to the next
// configured address. When the association is established: Established
// with the address it ran over; then ApplyLocatorSet for the peer's
// LOCATOR_SETs, Nominated and NominationLost from ICE, RelayUp and
// RelayDown from the relay client (RelayUp before the first packet that
// comes through the relay, or its address is taken for a new source). On
// the data path: Sent for each packet of ours, Received
// (ReceivedKeepalive) for each authenticated one of the peer's, with its
// length on the wire; Allow before sending data to a locator that is not
// current, or to a current one that is not Active. On SendProbe:
// AllowProbe, then the probe; Verified when it is answered. And
// HandleTimeout at Deadline.
package locator
