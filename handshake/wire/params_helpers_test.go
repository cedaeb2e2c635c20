package wire

import "testing"

// checkAllParams parses every parameter of p whose type this package decodes,
// failing the test on an error.
func checkAllParams(t testing.TB, p Packet) {
	t.Helper()
	it := p.Params()
	for {
		q, ok := it.Next()
		if !ok {
			break
		}
		if err := parseKnown(q); err != nil {
			t.Errorf("%v at %d: %v\n%s", q.Type(), q.Offset(), err, Format(p))
		}
	}
	if it.Err() != nil {
		t.Errorf("iteration: %v", it.Err())
	}
}

// decoders maps each parameter type with a ParseXxx function to a call of
// it that returns the struct as an Encoder, so that fuzzing can re-encode
// what it decoded. ENCRYPTED is parsed for the AES-CBC IV length.
var decoders = map[ParamType]func(c []byte) (Encoder, error){
	ParamESPInfo:              func(c []byte) (Encoder, error) { return ParseESPInfo(c) },
	ParamR1Counter:            func(c []byte) (Encoder, error) { return ParseR1Counter(c) },
	ParamPuzzle:               func(c []byte) (Encoder, error) { return ParsePuzzle(c) },
	ParamSolution:             func(c []byte) (Encoder, error) { return ParseSolution(c) },
	ParamSeq:                  func(c []byte) (Encoder, error) { return ParseSeq(c) },
	ParamAck:                  func(c []byte) (Encoder, error) { return ParseAck(c) },
	ParamDHGroupList:          func(c []byte) (Encoder, error) { return ParseDHGroupList(c) },
	ParamDiffieHellman:        func(c []byte) (Encoder, error) { return ParseDiffieHellman(c) },
	ParamHIPCipher:            func(c []byte) (Encoder, error) { return ParseHIPCipher(c) },
	ParamEncrypted:            func(c []byte) (Encoder, error) { return ParseEncrypted(c, 16) },
	ParamHostID:               func(c []byte) (Encoder, error) { return ParseHostID(c) },
	ParamHITSuiteList:         func(c []byte) (Encoder, error) { return ParseHITSuiteList(c) },
	ParamNotification:         func(c []byte) (Encoder, error) { return ParseNotification(c) },
	ParamEchoRequestSigned:    echoDecoder(ParamEchoRequestSigned),
	ParamEchoResponseSigned:   echoDecoder(ParamEchoResponseSigned),
	ParamTransportFormatList:  func(c []byte) (Encoder, error) { return ParseTransportFormatList(c) },
	ParamESPTransform:         func(c []byte) (Encoder, error) { return ParseESPTransform(c) },
	ParamHIPMAC:               func(c []byte) (Encoder, error) { return ParseHIPMAC(c) },
	ParamHIPMAC2:              func(c []byte) (Encoder, error) { return ParseHIPMAC2(c) },
	ParamHIPSignature2:        func(c []byte) (Encoder, error) { return ParseSignature2(c) },
	ParamHIPSignature:         func(c []byte) (Encoder, error) { return ParseSignature(c) },
	ParamEchoResponseUnsigned: echoDecoder(ParamEchoResponseUnsigned),
	ParamEchoRequestUnsigned:  echoDecoder(ParamEchoRequestUnsigned),
	// Relay, registration and NAT traversal (locator.go, registration.go,
	// relay.go, nat.go). LOCATOR_SET decodes to its plain form.
	ParamLocatorSet: func(c []byte) (Encoder, error) {
		v, err := ParseLocatorSet(c)
		if err != nil {
			return nil, err
		}
		return v.LocatorSet(), nil
	},
	ParamNATTraversalMode:  func(c []byte) (Encoder, error) { return ParseNATTraversalMode(c) },
	ParamTransactionPacing: func(c []byte) (Encoder, error) { return ParseTransactionPacing(c) },
	ParamRegInfo:           func(c []byte) (Encoder, error) { return ParseRegInfo(c) },
	ParamRegRequest:        func(c []byte) (Encoder, error) { return ParseRegRequest(c) },
	ParamRegResponse:       func(c []byte) (Encoder, error) { return ParseRegResponse(c) },
	ParamRegFailed:         func(c []byte) (Encoder, error) { return ParseRegFailed(c) },
	ParamRegFrom:           func(c []byte) (Encoder, error) { return ParseRegFrom(c) },
	ParamRelayedAddress:    func(c []byte) (Encoder, error) { return ParseRelayedAddress(c) },
	ParamMappedAddress:     func(c []byte) (Encoder, error) { return ParseMappedAddress(c) },
	ParamPeerPermission:    func(c []byte) (Encoder, error) { return ParsePeerPermission(c) },
	ParamCandidatePriority: func(c []byte) (Encoder, error) { return ParseCandidatePriority(c) },
	ParamNominate:          func(c []byte) (Encoder, error) { return ParseNominate(c) },
	ParamRelayFrom:         func(c []byte) (Encoder, error) { return ParseRelayFrom(c) },
	ParamRelayTo:           func(c []byte) (Encoder, error) { return ParseRelayTo(c) },
	ParamFrom:              func(c []byte) (Encoder, error) { return ParseFrom(c) },
	ParamRVSHMAC:           func(c []byte) (Encoder, error) { return ParseRVSHMAC(c) },
	ParamViaRVS:            func(c []byte) (Encoder, error) { return ParseViaRVS(c) },
	ParamRelayHMAC:         func(c []byte) (Encoder, error) { return ParseRelayHMAC(c) },
}

func echoDecoder(t ParamType) func(c []byte) (Encoder, error) {
	return func(c []byte) (Encoder, error) {
		e, err := ParseEcho(c)
		e.Type = t
		return e, err
	}
}

func parseKnown(q Param) error {
	if d, ok := decoders[q.Type()]; ok {
		_, err := d(q.Contents())
		return err
	}
	return nil
}
