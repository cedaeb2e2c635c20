package wire

import (
	"encoding/binary"
	"fmt"
)

// ParamType is the 16-bit type of a HIP parameter TLV (RFC 7401 §5.2.1). Its
// low bit is the critical bit C.
type ParamType uint16

// Parameter types: RFC 7401 §5.2, RFC 7402 §5.1, RFC 8046 §4, RFC 8003 §4,
// RFC 8004 §4.2, RFC 5770 §5 and RFC 9028 §5 (see CODEPOINTS.md §2).
const (
	ParamESPInfo              ParamType = 65    // RFC 7402 §5.1.1
	ParamR1Counter            ParamType = 129   // §5.2.3
	ParamLocatorSet           ParamType = 193   // RFC 8046 §4
	ParamPuzzle               ParamType = 257   // §5.2.4
	ParamSolution             ParamType = 321   // §5.2.5
	ParamSeq                  ParamType = 385   // §5.2.16
	ParamAck                  ParamType = 449   // §5.2.17
	ParamDHGroupList          ParamType = 511   // §5.2.6
	ParamDiffieHellman        ParamType = 513   // §5.2.7
	ParamHIPCipher            ParamType = 579   // §5.2.8
	ParamNATTraversalMode     ParamType = 608   // RFC 5770 §5.4, RFC 9028 §5.4
	ParamTransactionPacing    ParamType = 610   // RFC 5770 §5.5, RFC 9028 §5.5
	ParamEncrypted            ParamType = 641   // §5.2.18
	ParamHostID               ParamType = 705   // §5.2.9
	ParamHITSuiteList         ParamType = 715   // §5.2.10
	ParamCert                 ParamType = 768   // RFC 8002
	ParamNotification         ParamType = 832   // §5.2.19
	ParamEchoRequestSigned    ParamType = 897   // §5.2.20
	ParamRegInfo              ParamType = 930   // RFC 8003 §4.2
	ParamRegRequest           ParamType = 932   // RFC 8003 §4.3
	ParamRegResponse          ParamType = 934   // RFC 8003 §4.4
	ParamRegFailed            ParamType = 936   // RFC 8003 §4.5
	ParamRegFrom              ParamType = 950   // RFC 5770 §5.6, RFC 9028 §5.6
	ParamEchoResponseSigned   ParamType = 961   // §5.2.22
	ParamTransportFormatList  ParamType = 2049  // §5.2.11
	ParamESPTransform         ParamType = 4095  // RFC 7402 §5.1.2
	ParamRelayedAddress       ParamType = 4650  // RFC 9028 §5.12
	ParamMappedAddress        ParamType = 4660  // RFC 9028 §5.12
	ParamPeerPermission       ParamType = 4680  // RFC 9028 §5.13
	ParamCandidatePriority    ParamType = 4700  // RFC 9028 §5.14
	ParamNominate             ParamType = 4710  // RFC 9028 §5.15
	ParamHIPMAC               ParamType = 61505 // §5.2.12
	ParamHIPMAC2              ParamType = 61569 // §5.2.13
	ParamHIPSignature2        ParamType = 61633 // §5.2.15
	ParamHIPSignature         ParamType = 61697 // §5.2.14
	ParamEchoResponseUnsigned ParamType = 63425 // §5.2.23
	ParamEchoRequestUnsigned  ParamType = 63661 // §5.2.21
	ParamRelayFrom            ParamType = 63998 // RFC 5770 §5.6, RFC 9028 §5.6
	ParamRelayTo              ParamType = 64002 // RFC 5770 §5.6, RFC 9028 §5.6
	ParamFrom                 ParamType = 65498 // RFC 8004 §4.2.2
	ParamRVSHMAC              ParamType = 65500 // RFC 8004 §4.2.1
	ParamViaRVS               ParamType = 65502 // RFC 8004 §4.2.3
	ParamRelayHMAC            ParamType = 65520 // RFC 5770 §5.8, RFC 9028 §5.8
)

var paramNames = map[ParamType]string{
	ParamESPInfo:              "ESP_INFO",
	ParamR1Counter:            "R1_COUNTER",
	ParamLocatorSet:           "LOCATOR_SET",
	ParamPuzzle:               "PUZZLE",
	ParamSolution:             "SOLUTION",
	ParamSeq:                  "SEQ",
	ParamAck:                  "ACK",
	ParamDHGroupList:          "DH_GROUP_LIST",
	ParamDiffieHellman:        "DIFFIE_HELLMAN",
	ParamHIPCipher:            "HIP_CIPHER",
	ParamNATTraversalMode:     "NAT_TRAVERSAL_MODE",
	ParamTransactionPacing:    "TRANSACTION_PACING",
	ParamEncrypted:            "ENCRYPTED",
	ParamHostID:               "HOST_ID",
	ParamHITSuiteList:         "HIT_SUITE_LIST",
	ParamCert:                 "CERT",
	ParamNotification:         "NOTIFICATION",
	ParamEchoRequestSigned:    "ECHO_REQUEST_SIGNED",
	ParamRegInfo:              "REG_INFO",
	ParamRegRequest:           "REG_REQUEST",
	ParamRegResponse:          "REG_RESPONSE",
	ParamRegFailed:            "REG_FAILED",
	ParamRegFrom:              "REG_FROM",
	ParamEchoResponseSigned:   "ECHO_RESPONSE_SIGNED",
	ParamTransportFormatList:  "TRANSPORT_FORMAT_LIST",
	ParamESPTransform:         "ESP_TRANSFORM",
	ParamRelayedAddress:       "RELAYED_ADDRESS",
	ParamMappedAddress:        "MAPPED_ADDRESS",
	ParamPeerPermission:       "PEER_PERMISSION",
	ParamCandidatePriority:    "CANDIDATE_PRIORITY",
	ParamNominate:             "NOMINATE",
	ParamHIPMAC:               "HIP_MAC",
	ParamHIPMAC2:              "HIP_MAC_2",
	ParamHIPSignature2:        "HIP_SIGNATURE_2",
	ParamHIPSignature:         "HIP_SIGNATURE",
	ParamEchoResponseUnsigned: "ECHO_RESPONSE_UNSIGNED",
	ParamEchoRequestUnsigned:  "ECHO_REQUEST_UNSIGNED",
	ParamRelayFrom:            "RELAY_FROM",
	ParamRelayTo:              "RELAY_TO",
	ParamFrom:                 "FROM",
	ParamRVSHMAC:              "RVS_HMAC",
	ParamViaRVS:               "VIA_RVS",
	ParamRelayHMAC:            "RELAY_HMAC",
}

// String returns the RFC name of the parameter type, or PARAM(n).
func (t ParamType) String() string {
	if s, ok := paramNames[t]; ok {
		return s
	}
	return fmt.Sprintf("PARAM(%d)", uint16(t))
}

// Known reports whether this package has a name for t. It says nothing about
// whether the caller implements the parameter.
func (t ParamType) Known() bool {
	_, ok := paramNames[t]
	return ok
}

// Critical reports the C bit: odd types are critical and MUST be recognized
// by the recipient, or the packet is not processed further (§5.2.1).
func (t ParamType) Critical() bool { return t&1 == 1 }

// paramHeaderLen is the Type and Length fields of a TLV.
const paramHeaderLen = 4

// TLVLen returns the total length of a TLV whose Length field is n: type,
// length, contents and padding to a multiple of 8 octets. It is the formula
// of RFC 7401 §5.2.1, 11 + Length - (Length + 3) % 8.
func TLVLen(n int) int { return 11 + n - (n+3)%8 }

// Param is a view of one parameter TLV inside a packet (or inside the
// decrypted contents of an ENCRYPTED parameter). It is a small value and
// refers to the bytes in place.
type Param struct {
	tlv []byte // Type, Length, Contents and Padding
	off int    // offset of tlv in the buffer it was found in
}

// Type returns the parameter type, C bit included.
func (p Param) Type() ParamType { return ParamType(binary.BigEndian.Uint16(p.tlv)) }

// Contents returns exactly Length octets: the contents without padding.
func (p Param) Contents() []byte {
	n := int(binary.BigEndian.Uint16(p.tlv[2:]))
	return p.tlv[paramHeaderLen : paramHeaderLen+n : paramHeaderLen+n]
}

// Offset returns the octet offset of the TLV inside the packet. The octets
// before it are what HIP_MAC and HIP_SIGNATURE cover (RFC 7401 §6.4).
func (p Param) Offset() int { return p.off }

// TotalLen returns the length of the TLV including Type, Length and padding.
func (p Param) TotalLen() int { return len(p.tlv) }

// TLV returns the whole TLV, padding included, as it appears on the wire.
func (p Param) TLV() []byte { return p.tlv }

// ParamIter walks a chain of parameters. Its zero value is an empty chain.
type ParamIter struct {
	buf []byte
	off int
	err error
}

// IterParams returns an iterator over a chain of TLVs that starts at b[0]:
// for example the decrypted contents of ENCRYPTED (§5.2.18). Offsets are
// relative to b. Unlike Packet.Params, the chain has not been checked; the
// iterator stops at the first malformed TLV and reports it through Err. Use
// CheckParams to validate the whole chain first.
func IterParams(b []byte) ParamIter { return ParamIter{buf: b} }

// Next returns the next parameter, or false at the end of the chain or at a
// malformed TLV (see Err).
func (it *ParamIter) Next() (Param, bool) {
	if it.err != nil || it.off >= len(it.buf) {
		return Param{}, false
	}
	n, err := tlvAt(it.buf, it.off)
	if err != nil {
		it.err = err
		return Param{}, false
	}
	p := Param{tlv: it.buf[it.off : it.off+n : it.off+n], off: it.off}
	it.off += n
	return p, true
}

// Err returns the error that stopped the iteration, or nil.
func (it *ParamIter) Err() error { return it.err }

// CheckParams validates a TLV chain filling all of b, with the rules
// ParsePacket applies to a packet's parameters.
func CheckParams(b []byte) error { return checkParams(b, 0) }

// tlvAt returns the total length of the TLV at b[off:], checking that its
// header and its padded contents fit.
func tlvAt(b []byte, off int) (int, error) {
	rest := len(b) - off
	if rest < paramHeaderLen {
		return 0, &ParamError{Offset: off, Err: ErrParamLength,
			Detail: fmt.Sprintf("%d octets left, a TLV header is 4", rest)}
	}
	t := ParamType(binary.BigEndian.Uint16(b[off:]))
	n := TLVLen(int(binary.BigEndian.Uint16(b[off+2:])))
	if n > rest {
		return 0, &ParamError{Type: t, Offset: off, Err: ErrParamLength,
			Detail: fmt.Sprintf("TLV with padding is %d octets, only %d left", n, rest)}
	}
	return n, nil
}

// checkParams validates the chain b[start:]: every TLV fits with its
// padding and types are non-decreasing (§5.2.1). Padding values are not
// checked: the receiver SHOULD NOT check them (§5.2.1).
func checkParams(b []byte, start int) error {
	var last ParamType
	for off := start; off < len(b); {
		n, err := tlvAt(b, off)
		if err != nil {
			return err
		}
		t := ParamType(binary.BigEndian.Uint16(b[off:]))
		if off > start && t < last {
			return &ParamError{Type: t, Offset: off, Err: ErrParamOrder,
				Detail: fmt.Sprintf("follows %v", last)}
		}
		last = t
		off += n
	}
	return nil
}
