package turn

import (
	"net"
	"time"

	pturn "github.com/pion/turn/v5"
)

// authenticate is the pion AuthHandler, asked for every request that
// carries MESSAGE-INTEGRITY and a valid NONCE (RFC 8489 §9.2.4). It
// refuses a username that does not parse, has expired, or names a HIT
// that is not registered; otherwise it returns the long-term key
// MD5(username ":" realm ":" password) (RFC 8489 §9.2.2) of the password
// this server derives, and pion checks MESSAGE-INTEGRITY with it: a
// mismatch, i.e. a password not made with our secret (or another realm),
// comes back through authEvent as RefusedBadMAC. The userID handed to pion
// is the HIT: allocations belong to a host, whatever the expiry in the
// credentials it uses for a Refresh.
func (s *Server) authenticate(ra *pturn.RequestAttributes) (userID string, key []byte, ok bool) {
	hit, expires, err := parseUsername(ra.Username)
	switch {
	case err != nil:
		s.stats.refusedMalformed.Add(1)
		s.cfg.log.Debug("turn: credentials refused", "client", ra.SrcAddr, "reason", err)
		return "", nil, false
	case !s.cfg.now().Before(time.Unix(expires, 0)):
		s.stats.refusedExpired.Add(1)
		s.cfg.log.Debug("turn: credentials refused", "client", ra.SrcAddr, "hit", hit, "reason", "expired")
		return "", nil, false
	case !s.cfg.allowed(hit):
		s.stats.refusedNotRegistered.Add(1)
		s.cfg.log.Debug("turn: credentials refused", "client", ra.SrcAddr, "hit", hit, "reason", "not registered")
		return "", nil, false
	}
	// The realm is ours, not the client's: a client that answers the
	// challenge with another REALM fails the MESSAGE-INTEGRITY check.
	return hit.String(), pturn.GenerateAuthKey(ra.Username, s.cfg.realm, passwordFor(s.cfg.secret, ra.Username)), true
}

// authEvent is pion's EventHandler.OnAuth: called once authenticate has
// accepted a username, with the verdict of the MESSAGE-INTEGRITY check.
func (s *Server) authEvent(client, _ net.Addr, _, username, _, method string, verdict bool) {
	if verdict {
		s.stats.authOK.Add(1)
		return
	}
	s.stats.refusedBadMAC.Add(1)
	s.cfg.log.Debug("turn: credentials refused", "client", client, "username", username, "method", method, "reason", "bad MESSAGE-INTEGRITY")
}
