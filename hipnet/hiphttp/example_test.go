package hiphttp_test

import (
	"fmt"
	"io"
	"log"
	"net/http"

	"hipnet.dev/hipnet"
	"hipnet.dev/hipnet/hiphttp"
)

// startNode starts a node on loopback with a fresh identity.
func startNode() *hipnet.Node {
	id, err := hipnet.GenerateIdentity()
	if err != nil {
		log.Fatal(err)
	}
	n, err := hipnet.NewNode(hipnet.Config{Identity: id, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	return n
}

// An HTTP server on one node answers only a client it knows by HIT, and
// tells it who it is.
func Example() {
	server, client := startNode(), startNode()
	defer server.Close()
	defer client.Close()
	client.AddPeer(server.HIT(), server.LocalAddr())

	ln, err := server.Listen("tcp", ":80")
	if err != nil {
		log.Fatal(err)
	}
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit, _ := hiphttp.PeerHIT(r) // authenticated by the base exchange
		fmt.Fprintf(w, "hello, %v", hit == client.HIT())
	})
	allowed := func(h hipnet.HIT) bool { return h == client.HIT() }
	srv := hiphttp.Server(server, hiphttp.RequirePeer(allowed, hello))
	go srv.Serve(ln)
	defer srv.Close()

	c := &http.Client{Transport: hiphttp.Transport(client)}
	resp, err := c.Get("http://[" + server.HIT().String() + "]/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, string(body))
	// Output: 200 OK hello, true
}
