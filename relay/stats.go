package relay

import (
	"hipnet.dev/overlay"
	"hipnet.dev/relay/turn"
)

// Stats are the relay's counters.
type Stats struct {
	Registrations  int // hosts registered now
	RefusedPolicy  uint64
	RefusedFull    uint64
	RefusedBoth    uint64 // RENDEZVOUS and RELAY_UDP_HIP asked of one association (RFC 9028 §7.8)
	CredsIssued    uint64 // TURN credentials handed to registered hosts
	CredsRefused   uint64 // asked for by hosts that were not registered
	Relay          overlay.RelayStats
	Stack          overlay.Stats
	TURN           turn.Stats
	TURNConfigured bool
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := s.stack.Stats()
	out := Stats{
		Registrations: st.Registrations, RefusedPolicy: s.reg.refusedPolicy.Load(), RefusedFull: s.reg.refusedFull.Load(),
		RefusedBoth: s.reg.refusedBoth.Load(),
		CredsIssued: s.credsIssued.Load(), CredsRefused: s.credsRefused.Load(),
		Relay: st.Relay, Stack: st,
	}
	if s.turn != nil {
		out.TURN, out.TURNConfigured = s.turn.Stats(), true
	}
	return out
}
