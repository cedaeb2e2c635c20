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
//     difficulty raised by the caller under load (SetPuzzleDifficulty).
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
//   - §6.13-6.15: NOTIFY, CLOSE and CLOSE_ACK.
//
// Over UDP (RFC 5770 §5.1) the caller strips and adds the 4-octet zero
// marker; the HIP checksum stays zero there. Raw HIP needs
// wire.FillChecksum.
package handshake
