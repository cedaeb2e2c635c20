// Package hipgrpc runs gRPC over hipnet: a client dials a server by its
// HIT through a Node, and both ends learn the other's authenticated HIT.
// It lives apart from package hipnet so that the core does not import
// gRPC.
//
// A server serves on a hipnet listener with Credentials; a client dials
// with Dialer and the same Credentials:
//
//	ln, _ := serverNode.Listen("tcp", ":50051")
//	s := grpc.NewServer(grpc.Creds(hipgrpc.Credentials()),
//		grpc.ChainUnaryInterceptor(hipgrpc.UnaryRequirePeer(allowed)),
//		grpc.ChainStreamInterceptor(hipgrpc.StreamRequirePeer(allowed)))
//	go s.Serve(ln)
//
//	cc, _ := grpc.NewClient(hipgrpc.Target(serverHIT, 50051),
//		hipgrpc.Dialer(clientNode), grpc.WithTransportCredentials(hipgrpc.Credentials()))
//
// In a handler, PeerHIT(ctx) names the client; a client that passes
// grpc.Peer to a call finds the server's HIT in the peer's AuthInfo.
// The two interceptors guard unary and streaming RPCs separately: a
// server that has streaming methods needs both.
//
// # Targets
//
// Target writes "passthrough:///[HIT]:port": the passthrough resolver
// hands the address to the dialer unchanged, so no name lookup and no
// HTTP proxy ever sees it. grpc.NewClient's default resolver (dns) also
// accepts "[HIT]:port" and "dns:///[HIT]:port", because a HIT is an IPv6
// literal that it passes through without a lookup, but passthrough says
// what is meant. With a context dialer, gRPC does not use the
// environment's HTTP proxy.
//
// # What it must not do
//
// It adds no cryptography: ESP (RFC 7402) already authenticates and
// encrypts every byte of a hipnet stream, and the base exchange (RFC 7401)
// authenticated the peer's HIT. Credentials only report that fact to gRPC,
// so it trusts nothing but the *hipnet.Addr a Node's connection reports
// as its RemoteAddr. It refuses any other connection, so that the
// credentials can never label plain TCP as secure by mistake.
package hipgrpc
