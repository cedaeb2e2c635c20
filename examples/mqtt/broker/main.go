// Command broker is the MQTT example's broker: an embedded mochi-mqtt
// broker served on a hipnet listener, reached by its HIT through a HIP
// relay. It admits only the devices listed in the allow file (by
// hipnet.Config.Authorize, before any of their data arrives), names each
// client by its HIT, and lets a device publish only under
// devices/<its HIT>/.
//
//	broker -identity broker.key -relay RELAYHIT@host:10500 -allow devices.allow [-listen :10500] [-port 1883] [-v]
//
// It prints "HIT <hit>" once it serves, then one line per message
// published under devices/: "<client id> <topic> <payload>", the payload
// Go-quoted unless it is UTF-8 text without control characters. Logs go to
// standard error. SIGINT or SIGTERM stop it cleanly.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"unicode"
	"unicode/utf8"

	"hipnet.dev/examples/mqtt/internal/hipmqtt"
	"hipnet.dev/internal/cliflags"
)

func main() {
	cliflags.Main("broker", run)
}

const usage = `usage: broker -identity file -relay HIT@host:port -allow file [-listen addr] [-port n] [-v]

The MQTT example's broker, reached by its HIT through a HIP relay. It
admits only the devices of the allow file, prints "HIT <hit>" once it
serves, then "<client id> <topic> <payload>" for each message published
under devices/.

flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runWith(ctx, args, stdout, stderr, nil)
}

// runWith is run with the node's UDP socket supplied (pc non-nil), as the
// end-to-end tests do with sockets inside network namespaces; -listen is
// then ignored.
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, pc net.PacketConn) error {
	fs := cliflags.NewFlagSet("broker", usage, stderr)
	idPath := fs.String("identity", "broker.key", "host identity file (PEM; created, mode 0600, if missing)")
	listen := fs.String("listen", ":10500", "UDP address of the node (HIP and ESP)")
	relayList := fs.String("relay", "", "HIP relays to register with, HIT@host:port[,...] (required)")
	allowPath := fs.String("allow", "", "file of device HITs allowed to connect, one per line (required)")
	port := fs.Int("port", hipmqtt.DefaultPort, "inner stream port of the MQTT service")
	verbose := fs.Bool("v", false, "debug logs")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	if *allowPath == "" {
		return cliflags.Refuse(stderr, "broker", errors.New("-allow FILE is required (an empty file admits no device)"))
	}
	log := hipmqtt.NewLogger(stderr, *verbose)
	allowed, err := hipmqtt.ReadHITs(*allowPath)
	if err != nil {
		return err
	}
	node, relays, err := hipmqtt.StartNode(hipmqtt.NodeOptions{
		IdentityPath: *idPath, Listen: *listen, PacketConn: pc, Relays: *relayList, Allowed: allowed, Logger: log,
	})
	if err != nil {
		return err
	}
	defer node.Close()

	out := &syncWriter{w: stdout}
	b, err := hipmqtt.NewBroker(hipmqtt.BrokerConfig{
		Node:   node,
		Port:   *port,
		Logger: log.With("part", "mqtt"),
		OnMessage: func(m hipmqtt.Message) {
			out.printf("%s %s %s\n", m.ClientID, m.Topic, printable(m.Payload))
		},
	})
	if err != nil {
		return err
	}
	out.printf("HIT %v\n", node.HIT())
	log.Info("broker serving", "hit", node.HIT().String(), "addr", node.LocalAddr(), "mqtt", b.Addr().String(),
		"devices", len(allowed), "relays", relays)

	<-ctx.Done()
	log.Info("broker stopping")
	b.Close()
	return node.Close()
}

// printable returns the payload as it is if it is UTF-8 text without
// control characters, and Go-quoted otherwise, so that one message is one
// line and no device can forge the line of another.
func printable(p []byte) string {
	if utf8.Valid(p) && !bytes.ContainsFunc(p, unicode.IsControl) {
		return string(p)
	}
	return strconv.Quote(string(p))
}

// syncWriter serialises the lines written by the sessions' goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, format, args...)
}
