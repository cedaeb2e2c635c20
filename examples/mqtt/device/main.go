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
	code := exitCode(run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

// exitCode reports err on stderr and returns the exit status: 0 for
// success and for -h (the flag package printed the usage on standard
// error), 2 for a command line refused (explained on standard error
// already), 1 for any other error.
func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	}
	fmt.Fprintln(stderr, "device:", err)
	return 1
}

// usageError is a command line refused, explained on standard error by
// the flag package or by refuse.
type usageError struct{ error }

// refuse explains a refused command line on stderr and returns it as a
// usageError.
func refuse(stderr io.Writer, err error) error {
	fmt.Fprintf(stderr, "device: %v (device -h for help)\n", err)
	return usageError{err}
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
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: device -identity file -relay HIT@host:port -broker HIT [-listen addr] [-port n] [-interval d] [-v]

The MQTT example's device: it reaches the broker by its HIT through a HIP
relay and publishes telemetry every -interval. It prints "HIT <hit>" once
it has started.

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err} // the flag package explained it
	}
	if fs.NArg() > 0 {
		return refuse(stderr, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if *brokerText == "" {
		return refuse(stderr, errors.New("-broker HIT is required"))
	}
	broker, err := hipnet.ParseHIT(*brokerText)
	if err != nil {
		return refuse(stderr, fmt.Errorf("-broker: %w", err))
	}
	if *interval <= 0 {
		return refuse(stderr, errors.New("-interval must be positive"))
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
