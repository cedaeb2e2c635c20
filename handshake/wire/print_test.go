package wire

import (
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	raw := buildPacket(t, R1, pR1Counter, pPuzzle, pDHList, pDH, pCipherR1, pHostID, pSuiteList, pEchoReqS, pTFList, pESPTfR1, pSig2, pEchoReqU)
	p, err := ParsePacket(raw)
	if err != nil {
		t.Fatal(err)
	}
	s := Format(p)
	for _, want := range []string{
		"HIP R1 v2", hitI.String(), hitR.String(),
		"R1_COUNTER (129,C) len=12: counter=72623859790382856",
		"PUZZLE (257,C) len=36: K=10 lifetime=37 (32s) opaque=abcd",
		"DH_GROUP_LIST (511,C) len=3: groups=[P-256 P-384 MODP-1536]",
		"DIFFIE_HELLMAN (513,C) len=68: group=P-256 public=",
		"HIP_CIPHER (579,C) len=4: ciphers=[AES-128-CBC AES-256-CBC]",
		"HOST_ID (705,C) len=", "alg=ECDSA", "curve=1 key=65 octets",
		"HIT_SUITE_LIST (715,C) len=2: suites=[ECDSA/SHA-384 RSA,DSA/SHA-256]",
		"TRANSPORT_FORMAT_LIST (2049,C) len=2: formats=[ESP]",
		"ESP_TRANSFORM (4095,C) len=8: suites=[AES-GCM-16 AES-128-CBC/HMAC-SHA-256 NULL/HMAC-SHA-256]",
		"HIP_SIGNATURE_2 (61633,C) len=66: alg=ECDSA sig=", "(64 octets)",
		"ECHO_REQUEST_UNSIGNED (63661,C) len=3: opaque=010203 (3 octets)",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Format lacks %q:\n%s", want, s)
		}
	}
	// Malformed contents inside a well-framed packet are shown, not hidden.
	b := NewBuilder(nil, NOTIFY, hitI, hitR)
	b.AddRaw(ParamSeq, []byte{1, 2, 3})
	b.AddRaw(ParamNotification, []byte{0, 0, 0, 1, 0x02, 0x01})
	b.AddRaw(ParamType(40000), nil)
	raw, _ = b.Bytes()
	s = Format(Packet(raw))
	for _, want := range []string{"SEQ (385,C) len=3 MALFORMED", "UNSUPPORTED_CRITICAL_PARAMETER_TYPE (1) param=DIFFIE_HELLMAN", "PARAM(40000) (40000) len=0"} {
		if !strings.Contains(s, want) {
			t.Errorf("Format lacks %q:\n%s", want, s)
		}
	}
	// Never panics, even on views that did not come from ParsePacket.
	for _, b := range [][]byte{nil, {1}, raw[:41], append(raw[:HeaderLen:HeaderLen], 0xff, 0xff, 0xff, 0xff)} {
		_ = Format(Packet(b))
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{I1.String(), "I1"}, {CLOSE_ACK.String(), "CLOSE_ACK"}, {PacketType(5).String(), "PacketType(5)"},
		{ParamEchoResponseUnsigned.String(), "ECHO_RESPONSE_UNSIGNED"}, {ParamType(7).String(), "PARAM(7)"},
		{NotifyI2Acknowledgement.String(), "I2_ACKNOWLEDGEMENT"}, {NotifyType(99).String(), "NOTIFY(99)"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
	if !ParamHIPMAC.Critical() || ParamNotification.Critical() || !ParamTransportFormatList.Critical() || ParamCert.Critical() {
		t.Error("Critical")
	}
	if !NotifyInvalidSyntax.IsError() || NotifyI2Acknowledgement.IsError() {
		t.Error("IsError")
	}
	for _, pt := range []PacketType{I1, R1, I2, R2, UPDATE, NOTIFY, CLOSE, CLOSE_ACK} {
		if !pt.Known() {
			t.Errorf("%v not known", pt)
		}
	}
}
