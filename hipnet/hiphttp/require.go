package hiphttp

import (
	"net/http"

	"hipnet.dev/hipnet"
)

// RequirePeer returns a handler that passes a request to next only if
// PeerHIT names its client and allowed accepts that HIT; otherwise it
// answers 403 Forbidden. A request without a peer (a server without
// ConnContext, or a connection that is not hipnet's) is refused, as is
// every request when allowed is nil.
func RequirePeer(allowed func(hipnet.HIT) bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit, ok := PeerHIT(r)
		if !ok || allowed == nil || !allowed(hit) {
			http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
