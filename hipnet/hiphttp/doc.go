// Package hiphttp runs net/http over hipnet: a client reaches a server at
// http://[HIT]:port/ through a Node, and the server's handlers learn the
// client's authenticated HIT, as r.TLS binds a request to its TLS
// connection.
//
// A server serves on a hipnet listener; a client uses Transport:
//
//	ln, _ := serverNode.Listen("tcp", ":80")
//	srv := hiphttp.Server(serverNode, hiphttp.RequirePeer(allowed, mux))
//	go srv.Serve(ln)
//
//	c := &http.Client{Transport: hiphttp.Transport(clientNode)}
//	resp, _ := c.Get("http://[" + serverHIT.String() + "]/")
//
// In a handler, PeerHIT(r) names the client. net/http takes the HIT as an
// IPv6 literal in the URL's host, so no name is looked up.
//
// # What it must not do
//
// It adds no cryptography: ESP (RFC 7402) already authenticates and
// encrypts every byte of a hipnet stream, and the base exchange (RFC 7401)
// authenticated the peer's HIT. It trusts only the *hipnet.Addr that a
// Node's connection reports as its RemoteAddr, recorded by ConnContext
// when the connection is accepted; it never parses r.RemoteAddr or a
// header, strings that say nothing about who sent them. Transport dials
// through the node alone: a URL whose host is not a HIT fails, never
// falling back to plain TCP, and no proxy is used.
package hiphttp
