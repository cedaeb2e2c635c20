// Command hip is the hipnet operator tool.
//
//	hip keygen [-o file] [-type ecdsa-p256|ecdsa-p384|rsa2048|rsa3072]
//	    create a host identity (PEM, mode 0600) and print its HIT
//	hip hit [file]
//	    print the HIT of an identity file (default: the default node's key)
//	hip ping [-relay HIT@host:port] [-peer HIT@host:port] [-c n] [-json] HIT
//	    time the base exchange with HIT, then echo requests over the association
//	hip status [-url URL] [-json]
//	    a running node's HIT, address, relays, registrations and associations,
//	    read from its hipnet.StatusHandler
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

const usage = `usage: hip <command> [flags]

commands:
  keygen [-o file] [-type type]   create a host identity and print its HIT
  hit [file]                      print the HIT of an identity file
  ping [-relay R] [-peer P] HIT   time a base exchange, then echo over it, like ping(8)
  status [-url URL] [-json]       a running node's HIT, relays and associations

Run "hip <command> -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "keygen":
		err = keygen(args[1:], stdout, stderr)
	case "hit":
		err = hit(args[1:], stdout, stderr)
	case "ping":
		err = ping(args[1:], stdout, stderr)
	case "status":
		err = status(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "hip: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "hip:", err)
			return 2
		}
		fmt.Fprintln(stderr, "hip:", err)
		return 1
	}
	return 0
}

type usageError struct{ error }

// defaultKeyPath is where the default node keeps its key (see
// hipnet.Default).
func defaultKeyPath() string {
	if p := os.Getenv("HIPNET_IDENTITY"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "node.key"
	}
	return filepath.Join(dir, "hipnet", "node.key")
}

func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hip keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", defaultKeyPath(), "write the key to `file` (PEM, mode 0600)")
	typ := fs.String("type", "ecdsa-p256", "key `type`: ecdsa-p256, ecdsa-p384, rsa2048, rsa3072")
	force := fs.Bool("f", false, "overwrite an existing file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hip keygen [-o file] [-type type] [-f]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Errorf("keygen: unexpected argument %q", fs.Arg(0))}
	}
	kt, err := hostid.ParseKeyType(*typ)
	if err != nil {
		return usageError{err}
	}
	if _, err := os.Stat(*out); err == nil && !*force {
		return fmt.Errorf("keygen: %s exists (use -f to overwrite)", *out)
	}
	k, err := hostid.Generate(kt, nil)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o700); err != nil {
		return err
	}
	if err := hostid.SaveFile(*out, k); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%v\n", wire.HIT(k.HIT()))
	fmt.Fprintf(stderr, "wrote %s (%v)\n", *out, kt)
	return nil
}

func hit(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hip hit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hip hit [file]\n\nPrints the HIT of the identity in file (default "+defaultKeyPath()+").")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := defaultKeyPath()
	switch fs.NArg() {
	case 0:
	case 1:
		path = fs.Arg(0)
	default:
		return usageError{errors.New("hit: at most one file")}
	}
	k, err := hostid.LoadFile(path)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, wire.HIT(k.HIT()))
	return nil
}
