package relay

import (
	"time"

	"hipnet.dev/overlay"
	"hipnet.dev/relay/turn"
)

// Stats are the relay's counters.
type Stats struct {
	Registrations  int // hosts registered now
	RefusedPolicy  uint64
	RefusedFull    uint64
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
	s.mu.Lock()
	s.pruneLocked(time.Now())
	n := len(s.regs)
	s.mu.Unlock()
	out := Stats{
		Registrations: n, RefusedPolicy: s.refusedPolicy.Load(), RefusedFull: s.refusedFull.Load(),
		CredsIssued: s.credsIssued.Load(), CredsRefused: s.credsRefused.Load(),
		Relay: st.Relay, Stack: st,
	}
	if s.turn != nil {
		out.TURN, out.TURNConfigured = s.turn.Stats(), true
	}
	return out
}
