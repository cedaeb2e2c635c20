package netstack

import idl "hipnet.dev/internal/deadline"

// deadline is one direction's deadline of a conn (internal/deadline): a
// blocked Read or Write selects on Wait; moving it applies to operations
// already blocked as well as to later ones, as in package net.
type deadline = idl.Deadline

func newDeadline() deadline { return idl.New() }

func isClosed(c <-chan struct{}) bool { return idl.Closed(c) }
