package netstack

import (
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"hipnet.dev/handshake/wire"
)

// countLink counts what it is given and keeps nothing.
type countLink struct {
	segs, octets int
	dst          wire.HIT
}

func (c *countLink) LocalHIT() wire.HIT                           { return testHIT(1) }
func (c *countLink) HandleSegments(uint8, func(wire.HIT, []byte)) {}
func (c *countLink) WriteSegment(dst wire.HIT, proto uint8, seg []byte) error {
	c.segs++
	c.octets += len(seg)
	c.dst = dst
	return nil
}

// TestEndpointWriteAllocs: the outbound path of the endpoint (flatten the
// packet, check and strip its header, call the Link) allocates nothing.
func TestEndpointWriteAllocs(t *testing.T) {
	link := &countLink{}
	var st counters
	e := newEndpoint(link, link.LocalHIT(), DefaultMTU, DefaultMTU-ipv6HeaderLen-tcpMinHeaderLen, DefaultAckDelay, &st, func(wire.HIT, error) {})
	seg := make([]byte, 1288)
	seg[12] = 5 << 4
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		Payload: buffer.MakeWithData(packet(link.LocalHIT(), testHIT(2), protoTCP, seg)),
	})
	defer pkt.DecRef()
	e.writePacket(pkt) // fills the buffer pool
	if allocs := testing.AllocsPerRun(1000, func() { e.writePacket(pkt) }); allocs != 0 {
		t.Fatalf("writePacket: %v allocations", allocs)
	}
	if link.dst != testHIT(2) || link.octets != link.segs*len(seg) || st.segmentsSent.Load() != uint64(link.segs) {
		t.Fatalf("link got %d segments, %d octets, for %v", link.segs, link.octets, link.dst)
	}
}

// TestEndpointDetached: after detach, inbound segments are dropped and
// counted, never injected.
func TestEndpointDetached(t *testing.T) {
	var st counters
	e := newEndpoint(&countLink{}, testHIT(1), DefaultMTU, DefaultMTU-ipv6HeaderLen-tcpMinHeaderLen, DefaultAckDelay, &st, func(wire.HIT, error) {})
	e.deliver(testHIT(2), make([]byte, 20)) // not attached yet
	e.detach()
	e.Attach(nil)
	e.deliver(testHIT(2), make([]byte, 20))
	e.deliver(testHIT(2), make([]byte, maxSegment+1))
	if got := st.droppedIn.Load(); got != 3 {
		t.Fatalf("dropped %d, want 3", got)
	}
	if e.IsAttached() {
		t.Fatal("attached after detach")
	}
}
