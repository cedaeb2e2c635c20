// Package netstack is hipnet's optional userspace TCP/IP transport: real
// TCP (gVisor's netstack) between HITs, its segments carried in the
// node's ESP security associations in BEET mode (RFC 7402 Appendix B),
// so that the inner packet is a TCP segment whose IPv6 addresses are the
// two HITs, implied by the SA and not carried. It gives net.Conn and
// net.Listener, as package streams does over QUIC, with the same
// *overlay.Addr addresses and the same errors.
//
// # What the room holds
//
//   - Transport (transport.go): one gVisor stack per node with IPv6 and
//     TCP only, one interface whose address is the local HIT and a route
//     to every HIT through it; Dial, Listen, Close, Stats. Options
//     (config.go): MTU, buffer sizes, backlog, keep-alive, congestion
//     control, and an Associate hook that runs the base exchange beside a
//     Dial's SYN (which the Link queues until the SAs are in).
//   - Link (link.go): the interface to the HIP stack below, which the
//     overlay implements: LocalHIT, WriteSegment(dst, proto, seg),
//     HandleSegments(proto, fn); optionally HandleSegmentBatches (the
//     Link says where each receive batch ends), Live (whether the
//     association is up) and MaxSegment (how long a segment the path to
//     a peer carries).
//   - MSS clamping (mss.go): the MSS option of every SYN, out and in, is
//     lowered to what the path to that peer carries, so that each
//     connection's segments are sized by its own path.
//   - The interface (endpoint.go): a stack.LinkEndpoint with no link
//     header whose wire is the Link. Outbound, each IPv6 packet netstack
//     sends is checked and its 40-octet header stripped (header.go), and
//     the TCP segment goes to WriteSegment with the destination HIT from
//     that header; anything that is not the fixed header from the local
//     HIT followed directly by TCP (an extension header, ICMPv6, a
//     malformed packet) is dropped and counted in Stats. Inbound, each
//     segment the Link hands over gets a rebuilt header (src = the SA's
//     HIT, dst = the local HIT, next header 6, hop limit 64) and is
//     injected; on a Link with batches, through gVisor's GRO, which
//     coalesces a batch's segments of one connection before TCP sees
//     them and is flushed at the batch's end.
//   - Delayed ACKs (delack.go): gVisor's TCP acknowledges every segment
//     batch at once; the endpoint holds the bare ACK of a small segment
//     (a request) for at most Config.AckDelay, so that the answer carries
//     it, as a kernel's delayed ACK does (RFC 5681 §4.2, RFC 9293
//     §3.8.6.3). A one-octet echo then costs one ESP packet each way
//     instead of two.
//   - The net.Conn and net.Listener (conn.go, listener.go, deadline.go):
//     addresses *overlay.Addr{HIT, Port}; deadlines as in package net;
//     CloseWrite and CloseRead as on *net.TCPConn.
//
// # What it must not do
//
// It opens no sockets and sends nothing except TCP segments through
// Link.WriteSegment. It has no crypto and authenticates nothing itself:
// the only identity it knows is the src HIT the Link gives with each
// segment, which the ESP SA authenticated, and it never takes a peer's
// identity from the contents of a packet. Nothing else in hipnet imports
// it, so gVisor is linked only into applications that choose it.
//
// # Why a connection's peer is the ESP peer
//
// netstack demultiplexes a segment by its 4-tuple, and two of the four
// are addresses. Those addresses never come from the peer: the inner IPv6
// header is not carried in BEET mode, and endpoint.deliver writes it from
// the src HIT the Link reports, the HIT of the SA whose ICV verified the
// segment, and from the local HIT. The segment itself holds only ports,
// sequence numbers and data, none of which name a host. So a connection
// created by a SYN that arrived on the SA with X has remote address X
// (RemoteAddr is X), and every later segment that reaches it arrived on
// an SA with X. A host Y cannot inject into a connection with X, nor
// open one in X's name, whatever it puts in its segments: they arrive
// with src Y and match only Y's connections (TestBinding sends a
// captured segment of a live connection with Y in on X's SA; it is
// answered at most with a RST and never reaches the connection). This holds as
// long as the Link keeps its promise that src is the HIT of the
// authenticated SA; it is the whole of this transport's security.
//
// Outbound, the destination HIT is the one netstack routed the connection
// to, and the Link seals the segment in the SA with that HIT; a packet
// whose source is not the local HIT is never sent (header.go).
//
// # Checksums and MTU
//
// Outbound TCP checksums are real, over the IPv6 pseudo-header with the
// HITs (RFC 7401 §4.5.1), so a capture decrypted with the SA keys shows
// valid TCP. Inbound checksums are not verified: the ESP ICV already
// covers every octet (endpoint.go, Capabilities, says why).
//
// The interface MTU counts the 40-octet header netstack adds and the
// Link strips. With Config.MTU zero (the default) the interface takes the
// largest IPv6 packet, 65535 octets, and each connection's segments are
// sized by its path (mss.go): up to 64 KiB to a peer on this host, whose
// packets cross the loopback, as a local TCP connection's do; about 1,400
// octets across a 1,500-octet network. A peer whose path the Link cannot
// size gets DefaultMTU's MSS: 40+1288, the size of the QUIC transport's
// inner UDP datagram at streams.PacketSize, so that both fit the same
// wire budget after ESP, UDP and the outer IP header (streams/config.go).
// netstack keeps room for the largest TCP options, so its full data
// segments are some 40 octets under the MSS.
//
// # Goroutines
//
// Per Transport, netstack runs GOMAXPROCS TCP processor goroutines
// (gVisor's dispatcher, started by New), which process every inbound
// segment; Close stops them and waits (stack.Close, stack.Wait) after
// resetting every connection still open and giving those the
// application closed up to a second to deliver what they hold (linger).
// There is no goroutine per connection or
// listener. This package starts two kinds of goroutine: one runs
// Config.Associate for a Dial to a peer with no association, for that
// Dial's length (the Dial waits for it before it returns,
// connectAssociated); and, on a Link that reports on its associations,
// one per peer with open connections watches that peer's association
// (peerleft.go), until the last of them is closed, the peer's CLOSE
// resets them, or Close, which waits for it. Protocol
// timers (retransmission, keep-alive, TIME-WAIT) and deadlines are
// runtime timers whose callbacks run briefly when they fire, and so is
// the delayed-ACK timer (delack.go), whose callback sends the ACKs whose
// delay is over. Outbound
// segments are written on whichever goroutine netstack sends on (an
// application's Write, a processor, a timer callback), so WriteSegment
// must not block; inbound segments are injected on the Link's goroutine
// that calls the handler, which only queues them for a processor.
// TestGoroutines checks all of this.
//
// # How an application selects it
//
// The default stream transport is QUIC (package streams). An
// application that wants this one passes a factory to the hipnet.Config
// option for streams; the factory's body is New(link, cfg), with the
// overlay's *Stack as the Link.
//
// # Errors
//
// Dial, Listen and Accept return *net.OpError with Net "hip" and
// *overlay.Addr addresses. errors.Is works with overlay.ErrRefused (and
// syscall.ECONNREFUSED) when the peer answers a SYN with RST,
// overlay.ErrPortInUse, overlay.ErrClosed and net.ErrClosed (closed
// Transport, Listener or conn), and the overlay's errors from
// Config.Associate or from a WriteSegment that reports the peer
// unreachable. A Dial whose peer ends the association with CLOSE before
// the SYN-ACK (it is closing) fails at once with an error that is
// overlay.ErrPeerLeft and syscall.ECONNRESET, when the Link reports on
// its associations (leaveWatch): its SYN, retransmitted, would otherwise
// start a base exchange with a host that is gone. For the same reason,
// once the peer has closed the association only a SYN may start a new
// one (reopenLink), and a connection with it fails as the peer's RST,
// perhaps lost, would have failed it (peerleft.go, with keep-alive on):
// Read with overlay.ErrPeerLeft and ECONNRESET once what came before is
// read (io.EOF after the peer's FIN), Write with overlay.ErrPeerLeft and
// EPIPE. Reads and
// Writes give io.EOF after the peer's FIN, os.ErrDeadlineExceeded
// (Timeout true) at a deadline, and syscall.ECONNRESET, ECONNABORTED,
// EPIPE or ETIMEDOUT as package net does on Linux.
//
// # Congestion control
//
// SACK (RFC 2018) with SACK-based loss recovery (RFC 6675), and Reno
// (RFC 5681) by default rather than CUBIC (RFC 9438): the gVisor version
// in go.mod has a CUBIC bug that stalls a connection for good under loss
// (config.go, DefaultCongestionControl; TestCubicStall reproduces it),
// and its RACK loss detection (RFC 8985) stalls one for seconds under
// bursty loss (transport.go, setTCPOptions).
//
// RFC sections: RFC 7402 §3.2 and Appendix B.1.4–B.1.6 (BEET header
// processing), RFC 7401 §4.5.1 (HIT pseudo-header), RFC 8200 §3, §4 and
// §8.1 (IPv6 header, extension headers, pseudo-header), RFC 9293 (TCP),
// RFC 4303 §3.4.4 (ICV).
package netstack
