package hiphttp_test

import (
	"io"
	"net/http"
	"testing"

	"hipnet.dev/hipnet"
	"hipnet.dev/hipnet/hiphttp"
)

// newNode starts a node with a fresh identity on an ephemeral loopback
// UDP port, closed at the end of the test.
func newNode(t *testing.T) *hipnet.Node {
	t.Helper()
	id, err := hipnet.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	n, err := hipnet.NewNode(hipnet.Config{Identity: id, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// knows makes client know server's locator.
func knows(client, server *hipnet.Node) { client.AddPeer(server.HIT(), server.LocalAddr()) }

// serve serves srv on n's stream port 80 until the test ends.
func serve(t *testing.T, n *hipnet.Node, srv *http.Server) {
	t.Helper()
	ln, err := n.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// whoAmI answers with the HIT PeerHIT gives, or "none".
var whoAmI = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	hit, ok := hiphttp.PeerHIT(r)
	if !ok {
		io.WriteString(w, "none")
		return
	}
	io.WriteString(w, hit.String())
})

// get fetches url through n and returns the status and body.
func get(t *testing.T, n *hipnet.Node, url string) (int, string) {
	t.Helper()
	tr := hiphttp.Transport(n)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// urlOf is http://[HIT]/ for n, port 80 left implicit.
func urlOf(n *hipnet.Node) string { return "http://[" + n.HIT().String() + "]/" }
