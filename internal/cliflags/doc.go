// Package cliflags holds what the project's commands (cmd/hip-relay and
// the MQTT example's broker and device) share about their command lines:
// a flag set that explains itself on standard error, the refusal of a bad
// command line, and the exit status of the program: 0 for success and for
// -h, 2 for a command line refused, 1 for any other error.
//
// What it must not do: define flags of its own, or print anywhere but the
// standard error it is given.
package cliflags
