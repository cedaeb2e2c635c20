package turn

import (
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// A known answer, computed independently:
// python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(b"\x5a"*32, b"1800003600:2001:20::a", hashlib.sha256).digest()))'
func TestCredentialsKnownAnswer(t *testing.T) {
	user, pass := Credentials(testSecret, hitA, time.Unix(1_800_003_600, 999_999_999))
	if want := "1800003600:2001:20::a"; user != want {
		t.Errorf("username %q, want %q (expiry truncated to the second)", user, want)
	}
	if want := "8ZndO0Pf+dYmPXGMdHZhXuR8+FWOX46m+hc3mV6gf6c="; pass != want {
		t.Errorf("password %q, want %q", pass, want)
	}
}

func TestServerCredentialsUseItsClock(t *testing.T) {
	s, _ := newTestServer(t, nil)
	user, pass := s.Credentials(hitA, time.Hour)
	wantUser, wantPass := Credentials(testSecret, hitA, testNow.Add(time.Hour))
	if user != wantUser || pass != wantPass {
		t.Fatalf("Server.Credentials = %q %q, want %q %q", user, pass, wantUser, wantPass)
	}
}

func TestParseUsername(t *testing.T) {
	long := wire.MustParseHIT("2001:2f:ffff:ffff:ffff:ffff:ffff:ffff")
	for _, tc := range []struct {
		in      string
		hit     wire.HIT
		expires int64
		err     error
	}{
		{"1800003600:2001:20::a", hitA, 1_800_003_600, nil},
		{"0:2001:20::a", hitA, 0, nil},
		{"9223372036854775807:" + long.String(), long, 1<<63 - 1, nil},
		{"", wire.HIT{}, 0, errNoColon},
		{"1800003600", wire.HIT{}, 0, errNoColon},
		{":2001:20::a", wire.HIT{}, 0, errBadExpiry},
		{"01800003600:2001:20::a", wire.HIT{}, 0, errBadExpiry},
		{"+1800003600:2001:20::a", wire.HIT{}, 0, errBadExpiry},
		{"-1:2001:20::a", wire.HIT{}, 0, errBadExpiry},
		{"1.5:2001:20::a", wire.HIT{}, 0, errBadExpiry},
		{"9223372036854775808:2001:20::a", wire.HIT{}, 0, errBadExpiry},
		{"99999999999999999999:2001:20::a", wire.HIT{}, 0, errBadExpiry},
		{"1800003600:", wire.HIT{}, 0, errBadHIT},
		{"1800003600:2001:db8::1", wire.HIT{}, 0, errBadHIT},
		{"1800003600:::ffff:1.2.3.4", wire.HIT{}, 0, errBadHIT},
		{"1800003600:2001:20::a%eth0", wire.HIT{}, 0, errBadHIT},
		{"1800003600:2001:0020::a", wire.HIT{}, 0, errNonCanonical},
		{"1800003600:2001:20::A", wire.HIT{}, 0, errNonCanonical},
		{"1800003600:2001:20:0:0:0:0:0:a", wire.HIT{}, 0, errNonCanonical},
	} {
		hit, expires, err := parseUsername(tc.in)
		if err != tc.err || hit != tc.hit || expires != tc.expires {
			t.Errorf("parseUsername(%q) = %v, %d, %v; want %v, %d, %v", tc.in, hit, expires, err, tc.hit, tc.expires, tc.err)
		}
	}
}
