// Command hip is the hipnet operator tool.
//
//	hip keygen [-o file] [-type ecdsa-p256|ecdsa-p384|rsa2048|rsa3072|rsa4096] [-f]
//	    create a host identity (PEM, mode 0600), print its HIT on stdout
//	    and the file it wrote on stderr
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
	"strings"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

const usage = `usage: hip <command> [flags]

commands:
  keygen [-o file] [-type type]   create a host identity and print its HIT
  hit [file]                      print the HIT of an identity file
  ping [-relay R] [-peer P] HIT   time a base exchange, then echo over it, like ping(8)
  status [-url URL] [-a] [-json]  a running node's HIT, relays and associations
  version                         the module version, VCS revision and Go version hip was built from

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
	case "version":
		err = version(args[1:], stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "-h", "-help", "--help":
		fmt.Fprint(stderr, usage) // as the commands' -h print theirs
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
	var names []string
	for _, t := range hostid.KeyTypes() {
		names = append(names, t.String())
	}
	fs := flag.NewFlagSet("hip keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", defaultKeyPath(), "write the key to `file` (PEM, mode 0600; missing directories are created 0700)")
	typ := fs.String("type", hostid.ECDSAP256.String(), "key `type`: "+strings.Join(names, ", "))
	force := fs.Bool("f", false, "overwrite an existing file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hip keygen [-o file] [-type type] [-f]")
		fmt.Fprintln(stderr, "\nCreates a host identity, prints its HIT on stdout and the file it wrote on stderr.")
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
		return usageError{fmt.Errorf("keygen: unknown key type %q (want one of %s)", *typ, strings.Join(names, ", "))}
	}
	if err := keygenWrite(*out, kt, *force, stdout, stderr); err != nil {
		// The operator knows no package hostid; the file name is in
		// the message already.
		return fmt.Errorf("keygen: %s", strings.ReplaceAll(err.Error(), "hostid: ", ""))
	}
	return nil
}

// keygenWrite creates the key file for keygen and reports it: the HIT on
// stdout, for scripts, and the absolute path on stderr, for people.
func keygenWrite(out string, kt hostid.KeyType, force bool, stdout, stderr io.Writer) error {
	path := out
	if abs, err := filepath.Abs(path); err == nil {
		path = abs // say where the key went, whatever the working directory
	}
	exists := fmt.Errorf("%s exists (use -f to overwrite)", path)
	if _, err := os.Lstat(path); err == nil && !force {
		return exists
	}
	var (
		k   *hostid.PrivateKey
		err error
	)
	if force {
		if k, err = hostid.Generate(kt, nil); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := hostid.SaveFile(path, k); err != nil {
			return err
		}
	} else {
		// LoadOrCreate never replaces a file, even one that appeared
		// since the check above.
		var created bool
		if k, created, err = hostid.LoadOrCreate(path, kt, nil); err != nil {
			return err
		}
		if !created {
			return exists
		}
	}
	fmt.Fprintf(stdout, "%v\n", wire.HIT(k.HIT()))
	fmt.Fprintf(stderr, "wrote new %v host identity to %s\n", kt, path)
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
