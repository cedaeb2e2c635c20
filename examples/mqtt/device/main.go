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
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"hipnet.dev/examples/mqtt/internal/hipmqtt"
	"hipnet.dev/hipnet"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "device:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runWith(ctx, args, stdout, stderr, nil)
}

// runWith is run with the node's UDP socket supplied (pc non-nil), as the
// end-to-end tests do with sockets inside network namespaces; -listen is
// then ignored.
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, pc net.PacketConn) error {
	fs := flag.NewFlagSet("device", flag.ContinueOnError)
	fs.SetOutput(stderr)
	idPath := fs.String("identity", "device.key", "host identity file (PEM; created, mode 0600, if missing)")
	listen := fs.String("listen", ":0", "UDP address of the node (HIP and ESP)")
	relayList := fs.String("relay", "", "HIP relays, HIT@host:port[,...] (required)")
	brokerText := fs.String("broker", "", "the broker's HIT (required)")
	port := fs.Int("port", hipmqtt.DefaultPort, "the broker's inner MQTT port")
	interval := fs.Duration("interval", 10*time.Second, "time between two telemetry messages")
	verbose := fs.Bool("v", false, "debug logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *brokerText == "" {
		return errors.New("-broker HIT is required")
	}
	broker, err := hipnet.ParseHIT(*brokerText)
	if err != nil {
		return fmt.Errorf("-broker: %w", err)
	}
	if *interval <= 0 {
		return errors.New("-interval must be positive")
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
