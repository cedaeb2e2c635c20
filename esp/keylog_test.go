package esp_test

import (
	"testing"

	"hipnet.dev/esp"
)

func TestAppendWiresharkSA(t *testing.T) {
	k16 := "0x101112131415161718191a1b1c1d1e1f"
	auth := "0x404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
	cases := []struct {
		fam  string
		cfg  esp.Config
		want string
	}{
		{"IPv4", testConfig(esp.SuiteAESGCM16, 0x1a2b3c4d),
			`"IPv4","*","*","0x1a2b3c4d","AES-GCM with 16 octet ICV [RFC4106]","` + k16 + `20212223","NULL",""` + "\n"},
		{"IPv6", testConfig(esp.SuiteAES128CBCSHA256, 0xab),
			`"IPv6","*","*","0x000000ab","AES-CBC [RFC3602]","` + k16 + `","HMAC-SHA-256-128 [RFC4868]","` + auth + `"` + "\n"},
		{"IPv4", testConfig(esp.SuiteAES256CBCSHA256, 0xffffffff),
			`"IPv4","*","*","0xffffffff","AES-CBC [RFC3602]","` + k16 + `202122232425262728292a2b2c2d2e2f","HMAC-SHA-256-128 [RFC4868]","` + auth + `"` + "\n"},
		{"bogus", testConfig(esp.SuiteNullSHA256, 1),
			`"Any","*","*","0x00000001","NULL","","HMAC-SHA-256-128 [RFC4868]","` + auth + `"` + "\n"},
	}
	for _, c := range cases {
		if got := string(esp.AppendWiresharkSA([]byte("x"), c.fam, c.cfg)); got != "x"+c.want {
			t.Errorf("%v:\n got %s\nwant %s", c.cfg.Suite, got, "x"+c.want)
		}
	}
	bad := testConfig(esp.SuiteAESGCM16, 1)
	bad.Suite = 12
	if got := esp.AppendWiresharkSA(nil, "IPv4", bad); len(got) != 0 {
		t.Errorf("unsupported suite produced %q", got)
	}
}
