// Package streamcheck is test support for hipnet's mobility and failover
// tests (on loopback and in network namespaces): it runs a continuous
// stream echo through a connection, checks every octet that comes back
// and measures the longest time the stream stood still, and does the same
// for numbered datagrams.
//
// # What the room holds
//
//   - Echo (stream.go): the server side, which copies back all it reads.
//   - Checker (stream.go): the client side. Start writes a deterministic
//     pattern (Pattern, pattern.go: the octet at offset i depends on i
//     alone, so that a lost, duplicated, shifted or corrupted octet shows
//     at its offset) at a steady pace on a net.Conn and reads the echo
//     back, comparing every octet; Snapshot reports while it runs and Stop
//     stops writing, waits a bounded time (Config.Linger) for the rest of
//     the echo and returns the Report: octets written and echoed, the
//     offset of the first wrong one, the first error, and the longest gap
//     between two successive reads of echoed data while some was
//     outstanding. Report.Check turns it into a test's verdict.
//   - PacketProbe (packet.go): numbered datagrams sent at an interval to
//     an echo (EchoPackets) over a net.Conn or a net.PacketConn, with the
//     echoes counted (lost, duplicated, reordered, corrupted) and the
//     longest gap measured the same way.
//
// # What it must not do
//
// It is for tests only: nothing outside _test.go files and this package's
// own tests may import it. It depends on the standard library alone and
// knows nothing of HIP: it sees a net.Conn or a net.PacketConn. It closes
// nothing the caller owns: to unblock its goroutines, Stop sets the
// connection's deadlines and clears them after (it closes the connection
// only if it cannot set them). It runs two goroutines per Checker or
// PacketProbe, which Stop stops and waits for.
package streamcheck
