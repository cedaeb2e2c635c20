package turn

import (
	"testing"
	"time"
)

// FuzzParseUsername: the parser never panics, and what it accepts is
// exactly what Credentials writes for the same HIT and expiry.
func FuzzParseUsername(f *testing.F) {
	u, _ := Credentials(testSecret, hitA, time.Unix(1_800_003_600, 0))
	f.Add(u)
	f.Add("1800003600")
	f.Add("1800003600:2001:db8::1")
	f.Add("18e8:2001:20::a")
	f.Fuzz(func(t *testing.T, username string) {
		hit, expires, err := parseUsername(username)
		if err != nil {
			switch err {
			case errNoColon, errBadExpiry, errBadHIT, errNonCanonical:
			default:
				t.Fatalf("parseUsername(%q): unexpected error %v", username, err)
			}
			return
		}
		if !hit.IsORCHIDv2() || expires < 0 {
			t.Fatalf("parseUsername(%q) accepted HIT %v, expiry %d", username, hit, expires)
		}
		if again := formatUsername(hit, expires); again != username {
			t.Fatalf("parseUsername(%q) = %v, %d, which Credentials writes as %q", username, hit, expires, again)
		}
	})
}
