// Command device is the MQTT example's device: it publishes JSON
// telemetry with QoS 1 to devices/<its HIT>/telemetry on the broker,
// with the eclipse/paho MQTT client dialling through a hipnet node. It
// knows the broker by its HIT alone and reaches it through a HIP relay,
// so it works from behind a NAT; the path moves to a direct one when ICE
// finds it. Connections lost are re-established.
//
//	device -identity device.key -relay RELAYHIT@host:10500 -broker BROKERHIT [-interval 10s] [-listen :0] [-port 1883] [-v]
//
// It prints "HIT <hit>" at start (the line to add to the broker's allow
// file), then logs to standard error. SIGINT or SIGTERM stop it cleanly.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"hipnet.dev/examples/mqtt/internal/hipmqtt"
	"hipnet.dev/hipnet"
	"hipnet.dev/internal/cliflags"
)

func main() {
	cliflags.Main("device", run)
}

const usage = `usage: device -identity file -relay HIT@host:port -broker HIT [-listen addr] [-port n] [-interval d] [-v]

The MQTT example's device: it reaches the broker by its HIT through a HIP
relay and publishes telemetry every -interval. It prints "HIT <hit>" once
it has started.

flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runWith(ctx, args, stdout, stderr, nil)
}

// runWith is run with the node's UDP socket supplied (pc non-nil), as the
// end-to-end tests do with sockets inside network namespaces; -listen is
// then ignored.
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, pc net.PacketConn) error {
	fs := cliflags.NewFlagSet("device", usage, stderr)
	idPath := fs.String("identity", "device.key", "host identity file (PEM; created, mode 0600, if missing)")
	listen := fs.String("listen", ":0", "UDP address of the node (HIP and ESP)")
	relayList := fs.String("relay", "", "HIP relays, HIT@host:port[,...] (required)")
	brokerText := fs.String("broker", "", "the broker's HIT (required)")
	port := fs.Int("port", hipmqtt.DefaultPort, "the broker's inner MQTT port")
	interval := fs.Duration("interval", 10*time.Second, "time between two telemetry messages")
	verbose := fs.Bool("v", false, "debug logs")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	if *brokerText == "" {
		return cliflags.Refuse(stderr, "device", errors.New("-broker HIT is required"))
	}
	broker, err := hipnet.ParseHIT(*brokerText)
	if err != nil {
		return cliflags.Refuse(stderr, "device", fmt.Errorf("-broker: %w", err))
	}
	if *interval <= 0 {
		return cliflags.Refuse(stderr, "device", errors.New("-interval must be positive"))
	}
	log := hipmqtt.NewLogger(stderr, *verbose)
	node, relays, err := hipmqtt.StartNode(hipmqtt.NodeOptions{
		IdentityPath: *idPath, Listen: *listen, PacketConn: pc, Relays: *relayList,
		Allowed: map[hipnet.HIT]bool{broker: true}, // nobody else may associate with the device
		Logger:  log,
	})
	if err != nil {
		return err
	}
	defer node.Close()
	fmt.Fprintf(stdout, "HIT %v\n", node.HIT())
	log.Info("device starting", "hit", node.HIT().String(), "addr", node.LocalAddr(), "broker", broker.String(), "relays", relays)

	err = hipmqtt.RunDevice(ctx, hipmqtt.DeviceConfig{
		Node:     node,
		Broker:   broker,
		Port:     *port,
		Interval: *interval,
		Logger:   log.With("part", "mqtt"),
	})
	log.Info("device stopping")
	if cerr := node.Close(); err == nil {
		err = cerr
	}
	return err
}
