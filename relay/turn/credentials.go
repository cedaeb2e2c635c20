package turn

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"hipnet.dev/handshake/wire"
)

// Credentials returns a TURN username and password for hit, valid until
// expires (truncated to the second, so never for longer than asked).
//
// The username is "<expiry in Unix seconds>:<HIT in canonical IPv6 text>",
// the password base64(HMAC-SHA256(secret, username)): the time-limited
// credentials of draft-uberti-behave-turn-rest-00 with SHA-256 in place of
// SHA-1 (see the package documentation). An expiry before 1970 yields a
// username that the server refuses as malformed.
func Credentials(secret []byte, hit wire.HIT, expires time.Time) (username, password string) {
	username = formatUsername(hit, expires.Unix())
	return username, passwordFor(secret, username)
}

// formatUsername is the one spelling of a username that parseUsername
// accepts.
func formatUsername(hit wire.HIT, expires int64) string {
	return strconv.FormatInt(expires, 10) + ":" + hit.String()
}

// passwordFor is the password the holder of secret derives for username.
func passwordFor(secret []byte, username string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Reasons parseUsername gives; each is counted as RefusedMalformed.
var (
	errNoColon      = errors.New("turn: username has no ':' after the expiry")
	errBadExpiry    = errors.New("turn: username expiry is not canonical decimal Unix seconds")
	errBadHIT       = errors.New("turn: username HIT is not an ORCHIDv2 HIT")
	errNonCanonical = errors.New("turn: username HIT is not in canonical text form")
)

// maxExpiryDigits is the length of the largest int64, 9223372036854775807.
const maxExpiryDigits = 19

// parseUsername splits a username made by Credentials into the HIT and the
// expiry in Unix seconds. It accepts only what formatUsername writes: a
// canonical decimal (no sign, no leading zero), one ':', and the HIT in
// its RFC 5952 canonical form, so each (HIT, expiry) has exactly one
// username. The HIT's own colons follow the first one.
func parseUsername(username string) (hit wire.HIT, expires int64, err error) {
	num, text, ok := strings.Cut(username, ":")
	if !ok {
		return wire.HIT{}, 0, errNoColon
	}
	if len(num) == 0 || len(num) > maxExpiryDigits || (len(num) > 1 && num[0] == '0') {
		return wire.HIT{}, 0, errBadExpiry
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return wire.HIT{}, 0, errBadExpiry
		}
	}
	expires, err = strconv.ParseInt(num, 10, 64)
	if err != nil { // overflow: 19 digits above MaxInt64
		return wire.HIT{}, 0, errBadExpiry
	}
	hit, err = wire.ParseHIT(text)
	if err != nil {
		return wire.HIT{}, 0, errBadHIT
	}
	if hit.String() != text {
		return wire.HIT{}, 0, errNonCanonical
	}
	return hit, expires, nil
}
