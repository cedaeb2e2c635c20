package hiphttp

import (
	"net/http"

	"hipnet.dev/hipnet"
)

// Server returns an http.Server for h whose ConnContext is ConnContext,
// to be served on a listener of n:
//
//	ln, _ := n.Listen("tcp", ":80")
//	go hiphttp.Server(n, h).Serve(ln)
//
// Its Addr is n's HIT and port 80, "[HIT]:80", for logs and for one more
// reason: ListenAndServe would listen on the host's plain TCP, and on an
// address the host does not have, it fails instead of serving
// unauthenticated requests on every interface. Serve it with Serve.
// Other fields are http.Server's zero values; set timeouts as for any
// server.
func Server(n *hipnet.Node, h http.Handler) *http.Server {
	return &http.Server{
		Addr:        (&hipnet.Addr{HIT: n.HIT(), Port: 80}).String(),
		Handler:     h,
		ConnContext: ConnContext,
	}
}
