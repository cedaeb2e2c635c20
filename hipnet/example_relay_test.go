package hipnet_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/hipnet"
	"hipnet.dev/relay"
)

// A device registers with a relay; a client that knows only the device's
// HIT reaches it through the relay (cmd/hip-relay runs the same server).
func ExampleConfig_relays() {
	rkey, _ := hostid.Generate(hostid.ECDSAP256, nil)
	r, err := relay.New(relay.Config{Identity: rkey, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	relayArg := fmt.Sprintf("%v@%v", r.HIT(), r.Addr()) // "HIT@host:port"

	newNode := func() *hipnet.Node {
		id, _ := hipnet.GenerateIdentity()
		n, err := hipnet.NewNode(hipnet.Config{Identity: id, ListenAddr: "127.0.0.1:0", Relays: []string{relayArg}})
		if err != nil {
			log.Fatal(err)
		}
		return n
	}
	device, client := newNode(), newNode()
	defer device.Close()
	defer client.Close()
	ln, _ := device.Listen("tcp", ":7")
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "hello from the device")
	}()

	// No locator for the device: DialContext goes through the relay (it
	// waits for the client's own registration first).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, "tcp", "["+device.HIT().String()+"]:7")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	fmt.Println(string(b))
	// Output: hello from the device
}

// StatusHandler serves a node's status as JSON and its counters in the
// Prometheus text format; mount it where only operators reach it.
func ExampleStatusHandler() {
	id, _ := hipnet.GenerateIdentity()
	node, err := hipnet.NewNode(hipnet.Config{Identity: id, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	srv := httptest.NewServer(hipnet.StatusHandler(node)) // e.g. http.ListenAndServe("127.0.0.1:10580", ...)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "# TYPE hipnet_bex") {
			fmt.Println(line)
		}
	}
	// Output:
	// # TYPE hipnet_bex_started_total counter
	// # TYPE hipnet_bex_completed_total counter
	// # TYPE hipnet_bex_failed_total counter
}
