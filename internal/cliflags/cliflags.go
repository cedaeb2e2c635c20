package cliflags

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// UsageError is a command line refused, already explained on standard
// error by the flag package or by Refuse.
type UsageError struct{ error }

// Main runs run with the command line, standard output and standard error
// under a context that SIGINT and SIGTERM cancel, and exits the program
// with the status ExitCode gives its error.
func Main(name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ExitCode(name, run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

// ExitCode reports err on stderr, prefixed by the command's name, and
// returns the exit status: 0 for success and for flag.ErrHelp (the usage
// went to standard error, as the flag package prints it), 2 for a
// UsageError (explained on standard error already), 1 for any other error.
func ExitCode(name string, err error, stderr io.Writer) int {
	var ue UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	}
	fmt.Fprintln(stderr, name+":", err)
	return 1
}

// NewFlagSet returns a flag set named name that reports its errors on
// stderr and, for -h, prints usage followed by the flags' defaults there.
func NewFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args, which must hold flags only: it returns flag.ErrHelp
// for -h, and a UsageError, explained on the flag set's output, for a
// command line the flag package refuses or one with arguments left over.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return UsageError{err} // the flag package explained it
	}
	if fs.NArg() > 0 {
		return Refuse(fs.Output(), fs.Name(), fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	return nil
}

// Refuse explains a refused command line on stderr, with a pointer to the
// command's -h, and returns err as a UsageError.
func Refuse(stderr io.Writer, name string, err error) error {
	fmt.Fprintf(stderr, "%s: %v (%s -h for help)\n", name, err, name)
	return UsageError{err}
}
