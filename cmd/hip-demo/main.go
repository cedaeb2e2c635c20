// Command hip-demo starts two hipnet nodes on loopback that meet by HIT,
// and prints what happened: the HITs, every HIP control packet that
// crosses the wire (parameter by parameter), the negotiated suites, a
// stream and a datagram exchanged over the ESP association, the timings
// and the bytes counted on each side.
//
// Node A knows only B's HIT and B's UDP address. A dials B by HIT: the
// base exchange (I1, R1, I2, R2) authenticates both hosts by their keys
// and agrees ESP keys; a QUIC stream inside ESP carries a request and its
// answer; a datagram goes to B's datagram endpoint and comes back. B sees
// A's authenticated HIT as the remote address of both. Finally A closes,
// and its CLOSE/CLOSE_ACK cross the wire.
//
// With -core it instead walks the sans-I/O protocol core in memory: base
// exchange, ESP round trip, rekey and CLOSE, without sockets.
//
// Usage:
//
//	hip-demo [-core] [-rsa] [-v]
//
// It exits 0 when every step succeeded and 1, with the reason, otherwise.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"hipnet.dev/handshake/hostid"
)

func main() {
	fs := flag.NewFlagSet("hip-demo", flag.ContinueOnError)
	core := fs.Bool("core", false, "walk the protocol core in memory (no sockets): BEX, ESP, rekey, CLOSE")
	rsa := fs.Bool("rsa", false, "use RSA-2048 host identities instead of ECDSA P-256")
	verbose := fs.Bool("v", false, "hex-dump every packet")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: hip-demo [-core] [-rsa] [-v]\n\n"+
			"Starts two hipnet nodes on loopback that meet by HIT, exchange a stream\n"+
			"and a datagram, and prints every HIP packet and what happened.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "hip-demo: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		os.Exit(2)
	}
	kt := hostid.ECDSAP256
	if *rsa {
		kt = hostid.RSA2048
	}
	var err error
	if *core {
		err = runCore(kt, *verbose)
	} else {
		err = runNodes(kt, *verbose)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "hip-demo: FAILED: %v\n", err)
		os.Exit(1)
	}
}
