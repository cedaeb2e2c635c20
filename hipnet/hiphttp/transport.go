package hiphttp

import (
	"net/http"
	"time"

	"hipnet.dev/hipnet"
)

// Transport returns an http.Transport that opens every connection as a
// stream through n, for URLs such as http://[HIT]:port/ (port 80 if
// omitted). A host that is not a HIT fails to dial: there is no fallback
// to plain TCP, and Proxy is nil, so no proxy from the environment sees
// the request either. Its idle-connection limits are http.DefaultTransport's.
//
// It speaks HTTP/1.1. For HTTP/2 without TLS, over the one stream, set
// Protocols to UnencryptedHTTP2 on both this transport and the server.
// HTTPS works as over TCP if the server serves TLS and TLSClientConfig
// trusts it; it adds nothing to what ESP already gives.
func Transport(n *hipnet.Node) *http.Transport {
	return &http.Transport{
		DialContext:           n.DialContext,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
}
