package esp_test

import (
	"bytes"
	"testing"

	"hipnet.dev/esp"
)

var allSuites = []esp.Suite{esp.SuiteNullSHA256, esp.SuiteAES128CBCSHA256, esp.SuiteAES256CBCSHA256, esp.SuiteAESGCM16}

// seqBytes returns n bytes 0, 1, 2, ... offset by start.
func seqBytes(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// ivKey is what fixedRand yields: the CBC IV key of every test SA.
var ivKey = seqBytes(0xa0, 16)

func fixedRand() *bytes.Reader { return bytes.NewReader(ivKey) }

// testConfig returns a Config for suite s with fixed keys.
func testConfig(s esp.Suite, spi uint32) esp.Config {
	enc, auth := s.KeyLen()
	return esp.Config{
		SPI:     spi,
		Suite:   s,
		EncKey:  seqBytes(0x10, enc),
		AuthKey: seqBytes(0x40, auth),
		Rand:    fixedRand(),
	}
}

func newPair(t testing.TB, s esp.Suite, spi uint32) (*esp.Outbound, *esp.Inbound) {
	t.Helper()
	o, err := esp.NewOutbound(testConfig(s, spi))
	if err != nil {
		t.Fatal(err)
	}
	in, err := esp.NewInbound(testConfig(s, spi))
	if err != nil {
		t.Fatal(err)
	}
	return o, in
}

func mustSeal(t testing.TB, o *esp.Outbound, payload []byte, nh uint8) []byte {
	t.Helper()
	p, err := o.Seal(nil, payload, nh)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
