// Package handshake is the HIPv2 control plane of hipnet: the base exchange
// (I1, R1, I2, R2), UPDATE, NOTIFY and CLOSE state machines of RFC 7401,
// with the ESP security association setup and rekeying of RFC 7402.
//
// The room is sans-I/O. It opens no sockets, starts no goroutines and reads
// no clock: the caller passes each packet and the current time in, and
// drains packets to send, timers to set and events (association
// established, ESP keys, rekeyed, failed, closed) out. Every protocol rule is
// therefore testable deterministically with a fake clock, fuzzable, and
// small enough for devices. Its subpackages hold the wire format (wire) and
// host identities (hostid); the ESP data plane is package esp.
//
// Two types carry the state:
//
//   - Endpoint is the host: its identity, its pre-computed and periodically
//     rotated R1 generations (RFC 7401 §6.7.1), and the rules for packets
//     that arrive before an association exists. Answering an I1 costs a
//     copy and one HMAC — no public-key operation — and an I2 is checked
//     puzzle first, before any Diffie-Hellman or signature work (§6.9).
//   - Association is one peer: the states of §4.4 (UNASSOCIATED, I1-SENT,
//     I2-SENT, R2-SENT, ESTABLISHED, CLOSING, CLOSED, E-FAILED), its keys,
//     and its retransmission timer with exponential back-off.
//
// What it implements, by section:
//
//   - RFC 7401 §4.1.2, §5.2.4-5, §6.3: the puzzle, #I derived per Initiator
//     from a per-generation secret so I2s are checked without per-I1 state;
//     difficulty that follows the I2 load (load.go: HandleLoad raises #K
//     while I2s with correct solutions arrive faster than
//     Config.LoadThreshold, and lowers it again once they stop), or set by
//     the caller (SetPuzzleDifficulty). An Initiator solves easy puzzles
//     inline and hands harder ones to the caller (EventPuzzle, Puzzle.Solve,
//     PuzzleSolved), bounded by the puzzle's lifetime (§6.8 step 12).
//   - §5.2.6-7, §6.5: Diffie-Hellman groups 7 (P-256), 8 (P-384), 3 and 4
//     (MODP, with the RFC 2785 public value checks) and KEYMAT by HKDF with
//     the Responder's RHASH; HIP keys drawn first, then ESP keys
//     (RFC 7402 §7).
//   - §6.4: HIP_MAC, HIP_MAC_2, HIP_SIGNATURE and HIP_SIGNATURE_2 scopes.
//   - §6.6-6.10: the base exchange, simultaneous initiation (the larger HIT
//     responds), opportunistic mode, ENCRYPTED HOST_ID, negotiation by the
//     HIT_SUITE_LIST, DH_GROUP_LIST, HIP_CIPHER, TRANSPORT_FORMAT_LIST and
//     ESP_TRANSFORM lists, NOTIFY on failures.
//   - §6.11-6.12 with RFC 7402 §6.8-6.10: UPDATE with SEQ/ACK, rekeying with
//     ESP_INFO from a new KEYMAT index or a new Diffie-Hellman.
//   - §6.12.1: a 64-wide receive window of the peer's Update IDs; every
//     new SEQ is acknowledged, also while an UPDATE of ours is outstanding
//     (a rekey the peer starts then is answered once ours is acknowledged);
//     a rekey that does not complete is given up and started again.
//   - §6.13-6.15: NOTIFY, CLOSE and CLOSE_ACK; CLOSING retransmits its
//     CLOSE until UAL+MSL and CLOSED lasts UAL+2MSL (Tables 7 and 8), both
//     holding only what answering a CLOSE needs (Association.shed).
//   - §5.2.6, §4.1.7: the R1's DH_GROUP_LIST is our true preference, and an
//     Initiator refuses a group other than the first of it that its I1
//     offered (ErrDowngrade). It drops such an R1 and waits for another,
//     as §6.8 step 7 allows, rather than abort: R1s are signed without the
//     Initiator's HIT, so one obtained with another group list and
//     replayed would otherwise end any exchange. If none comes, the
//     exchange times out with ErrDowngrade (or ErrNoCommonDHGroup) as
//     its cause; no NOTIFY is sent.
//   - RFC 8046 §4.3, §5.2-5.4: the UPDATEs of host mobility (mobility.go),
//     described below.
//
// Over UDP (RFC 5770 §5.1) the caller strips and adds the 4-octet zero
// marker; the HIP checksum stays zero there. Raw HIP needs
// wire.FillChecksum.
//
// # Mobility UPDATEs (RFC 8046)
//
// The room builds and answers the packets of host mobility; which locator
// to use and when an address counts as verified is the caller's.
// AnnounceLocators sends UPDATE(ESP_INFO, LOCATOR_SET, SEQ) with OLD SPI =
// NEW SPI = our inbound SPI (§5.2 case 1, no rekey), reliable like any SEQ
// UPDATE and held back while another UPDATE of ours or a rekey is under way
// (the latest set wins). The peer reports a LOCATOR_SET whose HIP_MAC and
// HIP_SIGNATURE verify as EventLocatorSet, once per SEQ; its ESP_INFO
// starts a rekey only if its NEW SPI differs from its OLD SPI (§5.3).
// AppendProbe builds UPDATE(ECHO_REQUEST_SIGNED) for the caller to send to
// an address under test (§5.4); the peer emits EventEchoRequest whose Reply,
// UPDATE(ECHO_RESPONSE_SIGNED), goes back to where the probe came from, and
// we report it as EventEchoResponse. Probes carry no SEQ: the association
// would otherwise retransmit them to the peer's current locator rather than
// the address under test, hold them in the single outstanding-UPDATE slot,
// and close when a merely unreachable address never answers (RFC 7401 §6.11
// step 4); the caller retransmits them instead. Since a recorded probe can
// be replayed from anywhere and every answer costs a signature check and a
// signature, answers are limited to 10 a second per association (burst 5),
// the token taken after HIP_MAC and before the signature check; SEQ-less
// answers to our probes, a signature check each, have a limit of their own.
// An ECHO_REQUEST_SIGNED inside a SEQ UPDATE (RFC 8046 §3.2.1 Figure 3) is
// answered inside its ACK, which Outgoing carries and which is cached for
// the peer's retransmissions like any ACK: the SEQ window already stops
// replays there.
//
// # Replayed I2s: why spent solutions
//
// #I is derived from the HIT pair and the R1 generation, and a generation's
// Diffie-Hellman key answers every Initiator, so a recorded I2 is valid for
// as long as its generation is accepted. Were it accepted again, the
// Responder would install SAs with the keys of the association it was
// recorded from and send ESP from sequence number 1 under the same AES-GCM
// key and salt. Of the possible defences this package takes the one that
// holds by construction and costs no round trip: every generation records
// the solutions (HIT-I, #J) it accepted (solutions.go), and an I2 whose
// solution is spent is dropped before any public-key work, whether or not
// the association it created still exists. Keys are a function of the two
// Diffie-Hellman shares, #I and #J (§6.5); the Initiator draws a fresh share
// for every I2, and the Responder accepts each (generation, HIT-I, #J) at
// most once, so no two associations ever share ESP keys and no (key, nonce)
// pair repeats. The record lives exactly as long as the generation can
// accept I2s and is bounded (a full generation is rotated at once). The
// alternatives were weaker or dearer: tying #I to a per-I1 value would
// need state per I1 (§6.7 asks for none), and holding back the
// Responder's ESP until the Initiator proves liveness still leaves a
// replay able to replace a live association.
//
// # Why the public-key steps run in sequence
//
// An R1 costs the Initiator a signature check and a Diffie-Hellman (about
// 95 µs each for P-256 on the reference machine), independent of each
// other. Overlapping them on two cores, through a callback the stack would
// run on a goroutine, was built and measured, and dropped: the base
// exchange in memory took 698–747 µs against 658–670 µs in sequence, and
// no faster in the stack, because on that 2-vCPU VM a goroutine readied
// for the idle core starts 70–160 µs later, longer than the work it would
// hide. Nor does the Initiator release data on an R2 whose HIP_MAC_2 has
// verified before its signature has (§6.10 steps 3-4): HIP_MAC_2 proves
// only the holder of the Responder's Diffie-Hellman key, which an R1
// replayed from an older generation would pair with a key that may have
// leaked since; the signature proves the Host Identity now.
//
// # Deviations from the RFCs, for security
//
//   - RFC 7401 §6.9 orders I2 processing as decrypt ENCRYPTED (steps 11-12),
//     then HIP_MAC (14), then the signature (15). acceptI2 verifies HIP_MAC
//     before decrypting: HIP_MAC covers the ciphertext, so a tampered
//     ENCRYPTED is dropped before any decryption and the CBC padding can
//     never be probed (a padding oracle).
//   - §6.9.1 lets a Responder NOTIFY failures once the puzzle is solved.
//     acceptI2 answers nothing before HIP_SIGNATURE has verified: before
//     that every failure is silent, so an unauthenticated sender learns
//     nothing from the answer (no oracle) and cannot make us sign. In
//     particular an I2 choosing a HIP_CIPHER we did not offer is dropped
//     silently (its HIP keys, and so its HIP_MAC, depend on the cipher).
//     After the signature, a negotiation failure is answered with one
//     signed NOTIFY whose data is the I2's #J.
//   - §6.13 makes NOTIFY informational. handleNotify follows that, except
//     for an error NOTIFY signed by the Responder whose data is the #J of
//     our outstanding I2: only that exchange has that value, so it cannot
//     be a replay, and it ends the exchange at once (a peer's refusal then
//     surfaces immediately). An unbound error is kept as the cause if the
//     exchange times out.
//   - §6.8 step 7 has the Initiator check that the chosen group is the
//     first of the Responder's DH_GROUP_LIST, while §5.2.6 has the
//     Responder send its own preference list and choose the first of it
//     that the I1 offered. The two agree only when the I1 offered the
//     Responder's first group. We follow §5.2.6 on both sides (the R1's
//     list is our true preference; an Initiator requires the first group
//     of it that its I1 offered), the only reading under which a trimmed
//     I1 is detected. We accept both kinds of Responder. An Initiator that
//     applies step 7 to the letter and does not offer our first group
//     (P-256) aborts against us: it must offer it, or we would have to
//     put the chosen group first and give up downgrade detection.
//   - Tables 7 and 8 let CLOSING and CLOSED take an R1; we take one only in
//     I1-SENT and I2-SENT, since we leave those states only through an I1
//     of our own (Restart), so that an R1 solicited by someone else cannot
//     bring back a closed association.
//   - §6.12.1 step 2 asks to acknowledge retransmitted UPDATEs again; reack
//     does so at most once a retransmission timeout, as the step suggests,
//     so that replays cannot make us sign without bound; CLOSED answers a
//     retransmitted CLOSE with its cached CLOSE_ACK under the same limit
//     (reackClose).
//   - RFC 7401 §5.3.5 calls an UPDATE with neither SEQ nor ACK invalid.
//     Address probes (AppendProbe) and their answers are such UPDATEs, for
//     the reasons given under "Mobility UPDATEs"; we accept them with an
//     ECHO_REQUEST_SIGNED or ECHO_RESPONSE_SIGNED and nothing that needs
//     a SEQ, and only after HIP_MAC and HIP_SIGNATURE verify. A peer that
//     follows §5.3.5 to the letter drops our probes; its own probes, sent
//     in SEQ UPDATEs, are answered as it expects, in the ACK. An answer is
//     taken only for a probe of ours still waiting (sentProbes), checked
//     after HIP_MAC and before the rate limit and the signature.
//   - RFC 5770 §4.4 wants a Ta of 500 ms where none is configured; ours
//     is configured, Config.MinTa, 50 ms by default, RFC 9028 §4.4's value
//     for the same checks. We announce it in TRANSACTION_PACING, and a
//     peer that announces nothing is paced at 500 ms, as §4.4 says. A
//     Responder's offer above 65.535 s is held to that (the Initiator then
//     proposes less than offered, for absurd offers only).
package handshake
