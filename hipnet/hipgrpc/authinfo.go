package hipgrpc

import (
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc/credentials"

	"hipnet.dev/hipnet"
)

// AuthInfo is what Credentials report about a connection: the peer's HIT
// and address. Handlers reach it as peer.FromContext(ctx).AuthInfo, or
// more simply through PeerHIT. Its SecurityLevel is PrivacyAndIntegrity,
// which is what lets per-RPC credentials that require transport security
// (tokens, say) be sent.
type AuthInfo struct {
	credentials.CommonAuthInfo
	// HIT is the peer's HIT, authenticated by the base exchange.
	HIT hipnet.HIT
	// Addr is the peer's HIT and the port of the stream's far end.
	Addr *hipnet.Addr
}

// AuthType returns "hip".
func (AuthInfo) AuthType() string { return "hip" }

// ValidateAuthority accepts an authority that a call overrides with
// grpc.CallAuthority when it does not name a HIT, or names the peer's:
// the same rule as the handshake (credentials.AuthorityValidator).
func (a AuthInfo) ValidateAuthority(authority string) error {
	return checkAuthority(authority, a.HIT)
}

// authInfoFor builds the AuthInfo of a connection, refusing any that is
// not a Node's: only a *hipnet.Addr in RemoteAddr was authenticated.
func authInfoFor(c net.Conn) (AuthInfo, error) {
	a, ok := c.RemoteAddr().(*hipnet.Addr)
	if !ok || a == nil || a.HIT.IsZero() {
		return AuthInfo{}, fmt.Errorf("%w: remote address %v", ErrNotHIP, c.RemoteAddr())
	}
	addr := *a // the connection's own stays the connection's
	return AuthInfo{
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		HIT:            a.HIT,
		Addr:           &addr,
	}, nil
}

// checkAuthority refuses an authority ("[HIT]:port", "[HIT]" or a bare
// HIT) that names a HIT other than peer, as TLS refuses a certificate
// for another name. An authority that names no HIT (set with
// grpc.WithAuthority, say) is a label the peer cannot be checked against,
// and passes: the HIT the dialer asked for was authenticated anyway.
func checkAuthority(authority string, peer hipnet.HIT) error {
	host, _, err := net.SplitHostPort(authority)
	if err != nil { // no port: "[HIT]" or "HIT"
		host = strings.TrimSuffix(strings.TrimPrefix(authority, "["), "]")
	}
	want, err := hipnet.ParseHIT(host)
	if err != nil {
		return nil
	}
	if want != peer {
		return fmt.Errorf("%w: %q, but the peer is %v", ErrWrongPeer, authority, peer)
	}
	return nil
}
