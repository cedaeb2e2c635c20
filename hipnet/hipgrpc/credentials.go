package hipgrpc

import (
	"context"
	"net"

	"google.golang.org/grpc/credentials"
)

// Credentials returns transport credentials for connections made by a
// hipnet Node, for both ends: grpc.Creds on a server,
// grpc.WithTransportCredentials on a client. Their handshakes exchange
// nothing, since ESP already protects the stream; they check that the
// connection is a Node's and report its peer as an AuthInfo. A client's
// handshake also refuses a server whose HIT differs from the one the
// authority names. Any other connection fails with ErrNotHIP.
func Credentials() credentials.TransportCredentials { return creds{} }

// creds holds no state: there are no keys or names to configure, ESP
// and the node hold them.
type creds struct{}

func (creds) ClientHandshake(_ context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	ai, err := authInfoFor(conn)
	if err != nil {
		return nil, nil, err
	}
	if err := checkAuthority(authority, ai.HIT); err != nil {
		return nil, nil, err
	}
	// The same conn: closing what we return closes what we were given,
	// as the interface requires.
	return conn, ai, nil
}

func (creds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	ai, err := authInfoFor(conn)
	if err != nil {
		return nil, nil, err
	}
	return conn, ai, nil
}

// Info reports the security protocol "hip". gRPC writes the scheme
// "http", not "https", for any protocol but "tls"; that header is a label
// and changes nothing on the wire.
func (creds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "hip"}
}

func (creds) Clone() credentials.TransportCredentials { return creds{} }

// OverrideServerName does nothing: the interface still has it, but gRPC
// no longer calls it and deprecates it. Set the authority with
// grpc.WithAuthority; the client's handshake checks whatever authority
// gRPC passes it.
func (creds) OverrideServerName(string) error { return nil }
