package wire

import (
	"encoding/binary"
	"fmt"
)

// NotifyType is the Notify Message Type of a NOTIFICATION parameter
// (RFC 7401 §5.2.19). 0-16383 report errors, 16384-65535 report status.
type NotifyType uint16

// Notify Message Types (CODEPOINTS.md §8).
const (
	NotifyUnsupportedCriticalParameterType         NotifyType = 1     // RFC 7401 §5.2.19; data: the 2-octet type
	NotifyInvalidSyntax                            NotifyType = 7     // RFC 7401 §5.2.19
	NotifyNoDHProposalChosen                       NotifyType = 14    // RFC 7401 §5.2.19
	NotifyInvalidDHChosen                          NotifyType = 15    // RFC 7401 §5.2.19
	NotifyNoHIPProposalChosen                      NotifyType = 16    // RFC 7401 §5.2.19
	NotifyInvalidHIPCipherChosen                   NotifyType = 17    // RFC 7401 §5.2.19
	NotifyNoESPProposalChosen                      NotifyType = 18    // RFC 7402 §5.1.3
	NotifyInvalidESPTransformChosen                NotifyType = 19    // RFC 7402 §5.1.3
	NotifyUnsupportedHITSuite                      NotifyType = 20    // RFC 7401 §5.2.19
	NotifyAuthenticationFailed                     NotifyType = 24    // RFC 7401 §5.2.19
	NotifyChecksumFailed                           NotifyType = 26    // RFC 7401 §5.2.19
	NotifyHIPMACFailed                             NotifyType = 28    // RFC 7401 §5.2.19
	NotifyEncryptionFailed                         NotifyType = 32    // RFC 7401 §5.2.19
	NotifyInvalidHIT                               NotifyType = 40    // RFC 7401 §5.2.19
	NotifyBlockedByPolicy                          NotifyType = 42    // RFC 7401 §5.2.19
	NotifyResponderBusyPleaseRetry                 NotifyType = 44    // RFC 7401 §5.2.19
	NotifyLocatorTypeUnsupported                   NotifyType = 46    // RFC 8046 §5.3
	NotifyRegRequired                              NotifyType = 51    // RFC 8003 §3.2
	NotifyNoValidNATTraversalModeParameter         NotifyType = 60    // RFC 5770 §5.10
	NotifyConnectivityChecksFailed                 NotifyType = 61    // RFC 5770 §5.10
	NotifyMessageNotRelayed                        NotifyType = 62    // RFC 5770 §5.10
	NotifyServerReflexiveCandidateAllocationFailed NotifyType = 63    // RFC 9028 §5.10
	NotifyRVSHMACProhibitedWithRelay               NotifyType = 64    // RFC 9028 §5.10
	NotifyI2Acknowledgement                        NotifyType = 16384 // RFC 7401 §5.2.19
	NotifyNATKeepalive                             NotifyType = 16385 // RFC 9028 §5.3
)

var notifyNames = map[NotifyType]string{
	NotifyUnsupportedCriticalParameterType:         "UNSUPPORTED_CRITICAL_PARAMETER_TYPE",
	NotifyInvalidSyntax:                            "INVALID_SYNTAX",
	NotifyNoDHProposalChosen:                       "NO_DH_PROPOSAL_CHOSEN",
	NotifyInvalidDHChosen:                          "INVALID_DH_CHOSEN",
	NotifyNoHIPProposalChosen:                      "NO_HIP_PROPOSAL_CHOSEN",
	NotifyInvalidHIPCipherChosen:                   "INVALID_HIP_CIPHER_CHOSEN",
	NotifyNoESPProposalChosen:                      "NO_ESP_PROPOSAL_CHOSEN",
	NotifyInvalidESPTransformChosen:                "INVALID_ESP_TRANSFORM_CHOSEN",
	NotifyUnsupportedHITSuite:                      "UNSUPPORTED_HIT_SUITE",
	NotifyAuthenticationFailed:                     "AUTHENTICATION_FAILED",
	NotifyChecksumFailed:                           "CHECKSUM_FAILED",
	NotifyHIPMACFailed:                             "HIP_MAC_FAILED",
	NotifyEncryptionFailed:                         "ENCRYPTION_FAILED",
	NotifyInvalidHIT:                               "INVALID_HIT",
	NotifyBlockedByPolicy:                          "BLOCKED_BY_POLICY",
	NotifyResponderBusyPleaseRetry:                 "RESPONDER_BUSY_PLEASE_RETRY",
	NotifyLocatorTypeUnsupported:                   "LOCATOR_TYPE_UNSUPPORTED",
	NotifyRegRequired:                              "REG_REQUIRED",
	NotifyNoValidNATTraversalModeParameter:         "NO_VALID_NAT_TRAVERSAL_MODE_PARAMETER",
	NotifyConnectivityChecksFailed:                 "CONNECTIVITY_CHECKS_FAILED",
	NotifyMessageNotRelayed:                        "MESSAGE_NOT_RELAYED",
	NotifyServerReflexiveCandidateAllocationFailed: "SERVER_REFLEXIVE_CANDIDATE_ALLOCATION_FAILED",
	NotifyRVSHMACProhibitedWithRelay:               "RVS_HMAC_PROHIBITED_WITH_RELAY",
	NotifyI2Acknowledgement:                        "I2_ACKNOWLEDGEMENT",
	NotifyNATKeepalive:                             "NAT_KEEPALIVE",
}

// String returns the RFC name of the type, or NOTIFY(n).
func (t NotifyType) String() string {
	if s, ok := notifyNames[t]; ok {
		return s
	}
	return fmt.Sprintf("NOTIFY(%d)", uint16(t))
}

// IsError reports whether t is in the error range 0-16383 (§5.2.19).
func (t NotifyType) IsError() bool { return t < 16384 }

// Notification is the NOTIFICATION parameter (RFC 7401 §5.2.19):
// Reserved(16) | Notify Message Type(16) | Notification Data.
type Notification struct {
	Type NotifyType
	Data []byte
}

// ParseNotification parses NOTIFICATION contents: at least 4 octets. Data
// aliases contents and may be empty.
func ParseNotification(contents []byte) (Notification, error) {
	if len(contents) < 4 {
		return Notification{}, lengthError(ParamNotification, len(contents), "at least 4")
	}
	return Notification{Type: NotifyType(binary.BigEndian.Uint16(contents[2:])), Data: contents[4:]}, nil
}

func (Notification) ParamType() ParamType { return ParamNotification }
func (n Notification) Len() int           { return 4 + len(n.Data) }
func (n Notification) Encode(b []byte) {
	binary.BigEndian.PutUint16(b[2:], uint16(n.Type))
	copy(b[4:], n.Data)
}
