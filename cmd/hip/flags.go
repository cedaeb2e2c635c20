package main

import (
	"errors"
	"flag"
)

// parseFlags parses args with fs, whose output is standard error: -h
// prints the usage there and returns flag.ErrHelp (exit 0); a refused
// flag, explained there too by the flag package, returns a usageError
// (exit 2).
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return usageError{err}
	}
	return err
}
