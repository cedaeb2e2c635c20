package netstack

import (
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"

	"hipnet.dev/handshake/wire"
)

// endpoint is netstack's network interface: a stack.LinkEndpoint whose
// wire is the Link. It has no link-layer header and no address
// resolution; a packet netstack sends is an IPv6 packet, and a packet it
// receives is one endpoint rebuilt.
//
// Outbound it writes synchronously: WritePackets strips the IPv6 header
// and calls Link.WriteSegment on the goroutine netstack sends on (an
// application's Write, a TCP processor answering an ACK, a timer). The
// alternative, gVisor's link/channel with a goroutine draining it, costs
// a packet clone, a goroutine hand-off per packet and a goroutine per
// Transport. Measured on the in-memory pair (bench_test.go, 2 cores,
// receiving side on its own goroutine as behind a socket): bulk the same,
// about 200 MB/s either way; a one-octet echo 33 µs synchronous against
// 37 µs with the hand-off. The hand-off only won where WriteSegment itself
// is slow (the fake Link's sync mode, which runs the whole receiving stack
// inside it: 100 against 160 MB/s), by overlapping the sender with the
// link; the Link is required not to block, so that case should not arise.
type endpoint struct {
	link  Link
	local wire.HIT
	mtu   atomic.Uint32
	stats *counters
	// fallbackMSS is the MSS of a peer whose path the Link cannot size
	// (mss.go).
	fallbackMSS int

	// linkFailed is told about WriteSegment errors, to fail the Dials
	// waiting on that peer (Transport.linkFailed).
	linkFailed func(dst wire.HIT, err error)

	// bufs holds the contiguous copies of outbound packets that
	// WriteSegment is given (*[]byte of MTU octets): netstack keeps a
	// packet in several views (headers, payload chunks) and the Link
	// takes one slice.
	bufs sync.Pool

	// mu guards dispatcher against detach: inbound deliveries hold it for
	// reading, so that once detach returns no delivery is running and
	// none will reach netstack again.
	mu         sync.RWMutex
	dispatcher stack.NetworkDispatcher
	detached   bool

	// gro, when on (useGRO: the Link says where its receive batches end),
	// coalesces the TCP segments of one batch before netstack sees them,
	// as a NIC's GRO does (gVisor's stack/gro): one segment of up to
	// 64 KiB through IPv6 and TCP instead of dozens. deliver and flush
	// run on the Link's receiving goroutine only, which owns it; its
	// Dispatcher follows e.dispatcher (Attach, detach: under e.mu).
	gro   gro.GRO
	groOn bool

	// acks holds back the bare ACKs that an answer may carry (delack.go).
	acks *ackDelayer
}

var _ stack.LinkEndpoint = (*endpoint)(nil)

func newEndpoint(link Link, local wire.HIT, mtu uint32, fallbackMSS int, ackDelay time.Duration, stats *counters, linkFailed func(wire.HIT, error)) *endpoint {
	e := &endpoint{link: link, local: local, stats: stats, linkFailed: linkFailed, fallbackMSS: fallbackMSS}
	e.acks = newAckDelayer(ackDelay, e.sendSegment)
	e.mtu.Store(mtu)
	e.bufs.New = func() any {
		// Sized for a full segment of the fallback MSS, its headers and
		// the most TCP options; a buffer grows
		// when a longer packet needs it (writePacket) and stays grown. A
		// 64 KiB interface MTU would make every new buffer 64 KiB, for
		// the ACKs of a one-octet echo as well.
		b := make([]byte, ipv6HeaderLen+tcpMinHeaderLen+tcpMaxOptions+fallbackMSS)
		return &b
	}
	return e
}

// WritePackets hands every packet to the Link. It never fails: a packet
// that cannot be sent is dropped and counted, as a network would drop
// it, and TCP recovers it. netstack keeps ownership of the packets.
func (e *endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	for _, pkt := range pkts.AsSlice() {
		e.writePacket(pkt)
	}
	return pkts.Len(), nil
}

func (e *endpoint) writePacket(pkt *stack.PacketBuffer) {
	bp := e.bufs.Get().(*[]byte)
	defer e.bufs.Put(bp)
	n := pkt.Size()
	if cap(*bp) < n {
		*bp = make([]byte, n)
	}
	buf := (*bp)[:n]
	flatten(buf, pkt)

	dst, seg, why := stripIPv6(buf, e.local)
	if why != dropNone {
		e.stats.dropOut(why)
		return
	}
	e.clampSYN(seg, e.local, dst, dst)
	if e.acks.wants(seg) {
		hold, prev := e.acks.outbound(dst, seg)
		if hold {
			return // the answer may carry it (delack.go)
		}
		if prev != nil {
			e.sendSegment(prev.dst, prev.seg[:prev.n])
			putHeld(prev)
		}
	}
	e.sendSegment(dst, seg)
}

// sendSegment hands seg, a TCP segment to dst, to the Link.
func (e *endpoint) sendSegment(dst wire.HIT, seg []byte) {
	if err := e.link.WriteSegment(dst, protoTCP, seg); err != nil {
		e.stats.linkErrors.Add(1)
		e.linkFailed(dst, err)
		return
	}
	e.stats.segmentsSent.Add(1)
	e.stats.octetsSent.Add(uint64(len(seg)))
}

// flatten copies the packet (headers and data) into buf, which is
// pkt.Size() octets, without allocating.
func flatten(buf []byte, pkt *stack.PacketBuffer) {
	views, skip := pkt.AsViewList()
	n := 0
	for v := views.Front(); v != nil && n < len(buf); v = v.Next() {
		s := v.AsSlice()
		if skip >= len(s) {
			skip -= len(s)
			continue
		}
		n += copy(buf[n:], s[skip:])
		skip = 0
	}
}

// deliver injects a segment the Link received from src. The IPv6 header
// is built here from src and the local HIT, never taken from the
// segment: that is the binding of a connection's peer to the ESP peer
// (doc.go).
func (e *endpoint) deliver(src wire.HIT, seg []byte) {
	if len(seg) > maxSegment {
		e.stats.droppedIn.Add(1)
		return
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.dispatcher == nil {
		e.stats.droppedIn.Add(1)
		return
	}
	v := buffer.NewViewSize(ipv6HeaderLen + len(seg))
	b := v.AsSlice()
	putIPv6(b[:ipv6HeaderLen], src, e.local, protoTCP, len(seg))
	copy(b[ipv6HeaderLen:], seg)
	e.clampSYN(b[ipv6HeaderLen:], src, e.local, src)
	e.acks.received(src, seg)
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
	e.stats.segmentsReceived.Add(1)
	e.stats.octetsReceived.Add(uint64(len(seg)))
	if e.groOn {
		// The ESP ICV has authenticated every octet (Capabilities).
		pkt.NetworkProtocolNumber = ipv6.ProtocolNumber
		pkt.RXChecksumValidated = true
		e.gro.Enqueue(pkt)
	} else {
		e.dispatcher.DeliverNetworkPacket(ipv6.ProtocolNumber, pkt)
	}
	pkt.DecRef()
}

// useGRO turns coalescing on; before the Link delivers anything.
func (e *endpoint) useGRO() {
	e.gro.Init(true)
	e.groOn = true
}

// flush hands netstack what gro holds: the end of a receive batch.
func (e *endpoint) flush() {
	e.mu.RLock()
	defer e.mu.RUnlock()
	e.gro.Flush()
}

// dropDispatcher takes what gro still holds after detach, and drops it.
type dropDispatcher struct{ stack.NetworkDispatcher }

func (dropDispatcher) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

// detach stops inbound delivery for good; it returns once no delivery is
// running.
func (e *endpoint) detach() {
	e.mu.Lock()
	e.detached = true
	e.dispatcher = nil
	e.gro.Dispatcher = dropDispatcher{}
	e.mu.Unlock()
}

// Attach implements stack.LinkEndpoint.
func (e *endpoint) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	if !e.detached {
		e.dispatcher = d
		e.gro.Dispatcher = d // changed only here and in detach, under e.mu
	}
	e.mu.Unlock()
}

// IsAttached implements stack.LinkEndpoint.
func (e *endpoint) IsAttached() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.dispatcher != nil
}

// MTU implements stack.LinkEndpoint: the largest IPv6 packet, header
// included (Config.MTU, or 65535 when paths size the segments).
func (e *endpoint) MTU() uint32 { return e.mtu.Load() }

// SetMTU implements stack.LinkEndpoint.
func (e *endpoint) SetMTU(mtu uint32) { e.mtu.Store(mtu) }

// Capabilities implements stack.LinkEndpoint.
//
// RX checksum offload: netstack does not verify the TCP checksum of
// inbound segments. The ESP ICV has already authenticated every octet of
// the segment between the two hosts (RFC 4303 §3.4.4), which is strictly
// stronger than a 16-bit checksum, and the pseudo-header addresses are
// the ones deliver writes, so the check could only catch a peer that
// computes it wrongly; it would cost a pass over every octet received.
// (RFC 7402 §3.2 describes verifying it after decryption; that is for
// implementations where ESP and the address rewrite are separate layers.)
//
// TX checksum offload is NOT claimed: netstack computes every outbound
// TCP checksum over the IPv6 pseudo-header with the HITs as addresses, as
// RFC 7401 §4.5.1 requires of data on sockets bound to HITs, so a capture
// decrypted with the SA keys, and HIP implementations that verify it,
// see correct TCP (TestSegmentsOnTheWire).
func (e *endpoint) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}

// MaxHeaderLength implements stack.LinkEndpoint: no link header.
func (e *endpoint) MaxHeaderLength() uint16 { return 0 }

// LinkAddress implements stack.LinkEndpoint: there is no link address.
func (e *endpoint) LinkAddress() tcpip.LinkAddress { return "" }

// SetLinkAddress implements stack.LinkEndpoint.
func (e *endpoint) SetLinkAddress(tcpip.LinkAddress) {}

// Wait implements stack.LinkEndpoint: the endpoint runs no goroutine.
func (e *endpoint) Wait() {}

// ARPHardwareType implements stack.LinkEndpoint.
func (e *endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }

// AddHeader implements stack.LinkEndpoint: no link header.
func (e *endpoint) AddHeader(*stack.PacketBuffer) {}

// ParseHeader implements stack.LinkEndpoint: no link header.
func (e *endpoint) ParseHeader(*stack.PacketBuffer) bool { return true }

// Close implements stack.LinkEndpoint.
func (e *endpoint) Close() {}

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *endpoint) SetOnCloseAction(func()) {}
