package netstack

import "sync/atomic"

// Stats counts what crossed the Link, and what did not. The counters only
// grow.
type Stats struct {
	SegmentsSent     uint64 // segments handed to Link.WriteSegment without error
	OctetsSent       uint64 // their length (TCP header and data)
	SegmentsReceived uint64 // segments the Link delivered and netstack was given
	OctetsReceived   uint64

	// LinkErrors counts WriteSegment errors; TCP retransmits.
	LinkErrors uint64
	// DroppedInbound counts segments the Link delivered that were not
	// injected: too long for an IPv6 Payload Length, or the Transport is
	// closed.
	DroppedInbound uint64
	// Outbound packets netstack produced that are not a plain IPv6 header
	// from the local HIT followed by TCP, by reason. None are expected:
	// the interface has no NDP, MLD or DAD, and only TCP is registered.
	DroppedMalformed uint64
	DroppedExtension uint64
	DroppedProtocol  uint64
	DroppedSource    uint64

	// AcksDelayed counts bare ACKs held back for an answer to carry
	// (Config.AckDelay, delack.go); AcksSaved, those of them that an
	// answer or a later ACK did carry, so that they were never sent.
	AcksDelayed, AcksSaved uint64

	// Retransmits is netstack's count of retransmitted TCP segments,
	// over all connections.
	Retransmits uint64
}

// counters are the atomic counters behind Stats.
type counters struct {
	segmentsSent, octetsSent, segmentsReceived, octetsReceived atomic.Uint64

	linkErrors, droppedIn                                              atomic.Uint64
	droppedMalformed, droppedExtension, droppedProtocol, droppedSource atomic.Uint64
}

func (c *counters) dropOut(why dropReason) {
	switch why {
	case dropMalformed:
		c.droppedMalformed.Add(1)
	case dropExtension:
		c.droppedExtension.Add(1)
	case dropProtocol:
		c.droppedProtocol.Add(1)
	case dropSource:
		c.droppedSource.Add(1)
	}
}

func (c *counters) snapshot() Stats {
	return Stats{
		SegmentsSent:     c.segmentsSent.Load(),
		OctetsSent:       c.octetsSent.Load(),
		SegmentsReceived: c.segmentsReceived.Load(),
		OctetsReceived:   c.octetsReceived.Load(),
		LinkErrors:       c.linkErrors.Load(),
		DroppedInbound:   c.droppedIn.Load(),
		DroppedMalformed: c.droppedMalformed.Load(),
		DroppedExtension: c.droppedExtension.Load(),
		DroppedProtocol:  c.droppedProtocol.Load(),
		DroppedSource:    c.droppedSource.Load(),
	}
}
