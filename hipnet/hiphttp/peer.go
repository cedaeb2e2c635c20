package hiphttp

import (
	"context"
	"net"
	"net/http"

	"hipnet.dev/hipnet"
)

// peerKey is the context key under which ConnContext records the peer's
// *hipnet.Addr.
type peerKey struct{}

// ConnContext is for http.Server.ConnContext: it records the peer of c,
// if c is a hipnet connection, in the context of every request read from
// c, where PeerHIT and PeerAddr find it. Other connections get ctx as it
// is. Server sets it; a server made by hand sets
//
//	srv.ConnContext = hiphttp.ConnContext
//
// It sees a *tls.Conn's peer too (HTTPS over hipnet), since a tls.Conn
// reports the RemoteAddr of the connection underneath.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	a, ok := connPeer(c)
	if !ok {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, a)
}

// PeerHIT returns the HIT of the client that sent r, authenticated by the
// base exchange. It is false unless the server's ConnContext is
// ConnContext (Server sets it) and the request came over a hipnet
// connection. Without ConnContext it is always false, though
// r.RemoteAddr may read "[HIT]:port": that string is not parsed, so that
// nothing can pass text off as an authenticated peer.
func PeerHIT(r *http.Request) (hipnet.HIT, bool) {
	a, ok := PeerAddr(r)
	if !ok {
		return hipnet.HIT{}, false
	}
	return a.HIT, true
}

// PeerAddr is PeerHIT with the port of the client's end of the stream. It
// returns a copy: changing it changes nothing.
func PeerAddr(r *http.Request) (*hipnet.Addr, bool) {
	a, ok := r.Context().Value(peerKey{}).(*hipnet.Addr)
	if !ok {
		return nil, false
	}
	cp := *a
	return &cp, true
}

// ConnPeerHIT returns the HIT of c's peer if c is a connection of a
// hipnet Node (its RemoteAddr a *hipnet.Addr), for code that holds the
// connection itself, such as http.Server.ConnState.
func ConnPeerHIT(c net.Conn) (hipnet.HIT, bool) {
	a, ok := connPeer(c)
	if !ok {
		return hipnet.HIT{}, false
	}
	return a.HIT, true
}

// connPeer returns a copy of c's remote *hipnet.Addr, refusing anything
// else: only a Node's connections report one, and only after the base
// exchange authenticated the HIT.
func connPeer(c net.Conn) (*hipnet.Addr, bool) {
	a, ok := c.RemoteAddr().(*hipnet.Addr)
	if !ok || a == nil || a.HIT.IsZero() {
		return nil, false
	}
	cp := *a
	return &cp, true
}
