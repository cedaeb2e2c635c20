// Package wire is the HIPv2 wire format: the packet header, the parameter
// TLVs and the framing of HIP over UDP, as bytes and nothing more.
//
// # What the room holds
//
//   - Packet, a zero-copy view over one HIP packet (RFC 7401 §5.1). ParsePacket
//     checks it once at the door (lengths, version, packet type, the whole
//     TLV chain, parameter order, §5.2.1); the accessors then read in place.
//     Parsing never allocates.
//   - Param and ParamIter, views over the TLVs; one ParseXxx function per
//     parameter family that checks the contents' lengths and returns a plain
//     struct aliasing the input (again without allocating): PUZZLE and
//     SOLUTION (puzzle.go), DH_GROUP_LIST and DIFFIE_HELLMAN (lists.go,
//     dh.go), HIP_CIPHER (cipher.go), HOST_ID and the HI/HIT suite codepoints
//     (hostid.go), HIT_SUITE_LIST and TRANSPORT_FORMAT_LIST (lists.go),
//     HIP_MAC/HIP_MAC_2 (mac.go), HIP_SIGNATURE/_2 (signature.go), SEQ and
//     ACK (seq.go), ENCRYPTED (encrypted.go), NOTIFICATION (notification.go),
//     the four ECHO parameters (echo.go), R1_COUNTER (r1counter.go) and
//     ESP_INFO/ESP_TRANSFORM of RFC 7402 §5.1 (esp.go); for NAT traversal,
//     relays and registration: LOCATOR_SET with the transport locators of
//     RFC 5770 §5.7 (locator.go), REG_INFO/REQUEST/RESPONSE/FAILED and the
//     RFC 8003 lifetime encoding (registration.go), RELAY_FROM, RELAY_TO,
//     REG_FROM, RELAYED_ADDRESS, MAPPED_ADDRESS, FROM, VIA_RVS, RVS_HMAC and
//     RELAY_HMAC (relay.go), NAT_TRAVERSAL_MODE, TRANSACTION_PACING,
//     PEER_PERMISSION, CANDIDATE_PRIORITY and NOMINATE (nat.go).
//   - Every parameter struct has ParamType, Len and Encode methods and so is
//     an Encoder; Encode writes exactly Len octets into zeroed contents.
//   - Builder, which appends a packet to a caller's buffer from those structs
//     (each is an Encoder) or from raw TLVs, in ascending type order with
//     zero padding.
//   - The HIP checksum with its IPv6/IPv4 pseudo headers (§5.1.1), the octets
//     covered by HIP_MAC, HIP_MAC_2, HIP_SIGNATURE and HIP_SIGNATURE_2
//     (§6.4, covered.go), and the UDP framing with the non-ESP marker
//     (RFC 5770 §5.1, RFC 9028 §5.1, RFC 3948 §2.2).
//   - Format, a human-readable rendering of any parsed packet.
//
// # What it must not do
//
// No cryptography and no crypto decisions: it does not compute or check
// HMACs, signatures, puzzles or KEYMAT, does not choose groups, ciphers or
// suites, and does not judge whether a parameter belongs in a packet type or
// whether a #I has the right RHASH_len; the state machine in package
// handshake does. No I/O, no goroutines, no clocks, no logging. It enforces
// only what the RFC text says about the bytes, and where the text tells a
// receiver to ignore something (the fixed and reserved header bits, padding
// values, trailing octets after the declared length) it ignores it.
//
// RFC sections: RFC 7401 §5.1-§5.3 and §6.4 (what MACs and signatures
// cover), Appendix C (checksum vectors); RFC 7402 §5.1; RFC 8046 §4;
// RFC 8003 §4; RFC 8004 §4.2; RFC 5770 §5.4-5.8 and RFC 9028 §5; RFC 7343 §2
// (ORCHIDv2); RFC 5770 §5.1 and RFC 9028 §5.1 (UDP encapsulation); RFC 3948
// §2.2 (non-ESP marker). The numbers are summarised in CODEPOINTS.md.
package wire
