// Package deadline is a read or write deadline as a channel that is closed
// when it passes, the pattern of net.Pipe, shared by the conns of hipnet's
// layers: overlay.InnerConn and the stream conns of streams and
// streams/netstack. A blocked Read or Write selects on Wait; Set moves the
// deadline for the waiters already waiting too, as package net requires
// of SetDeadline.
//
// # What it must not do
//
// Start goroutines (a passing deadline is a time.AfterFunc that closes the
// channel), or know anything of the conns that use it.
package deadline
