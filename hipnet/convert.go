package hipnet

import (
	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// The stack (package overlay) reports its state in its own types; these
// functions copy them into hipnet's, field by field, so that a field the
// stack adds does not change hipnet's API until hipnet adds it too
// (TestStatusTypesMatchStack notices such a field).

func statusFrom(s overlay.Status) Status {
	st := Status{
		HIT:       s.HIT,
		LocalAddr: s.LocalAddr,
		Peers:     peersFrom(s.Peers),
		Stats:     statsFrom(s.Stats),
	}
	if s.Relays != nil {
		st.Relays = make([]RelayStatus, len(s.Relays))
		for i, r := range s.Relays {
			st.Relays[i] = RelayStatus{HIT: r.HIT, Addr: r.Addr, Registered: r.Registered, Reflexive: r.Reflexive}
		}
	}
	if s.Registrations != nil {
		st.Registrations = make([]Registration, len(s.Registrations))
		for i, r := range s.Registrations {
			st.Registrations[i] = Registration{
				Peer:     r.Peer,
				Granted:  r.Granted,
				Lifetime: r.Lifetime,
				Expires:  r.Expires,
				Failed:   regFailuresFrom(r.Failed),
			}
		}
	}
	return st
}

func regFailuresFrom(fs []wire.RegFailed) []RegistrationFailure {
	if fs == nil {
		return nil
	}
	out := make([]RegistrationFailure, len(fs))
	for i, f := range fs {
		out[i] = RegistrationFailure{FailureType: f.FailureType, Types: f.Types}
	}
	return out
}

func peersFrom(ps []overlay.PeerInfo) []PeerInfo {
	if ps == nil {
		return nil
	}
	out := make([]PeerInfo, len(ps))
	for i, p := range ps {
		out[i] = PeerInfo{
			HIT:           p.HIT,
			State:         p.State,
			Path:          p.Path,
			Locator:       p.Locator,
			HITSuite:      p.HITSuite,
			DHGroup:       p.DHGroup,
			HIPCipher:     p.HIPCipher,
			ESPSuite:      p.ESPSuite,
			InSPI:         p.InSPI,
			OutSPI:        p.OutSPI,
			BytesIn:       p.BytesIn,
			BytesOut:      p.BytesOut,
			PacketsIn:     p.PacketsIn,
			PacketsOut:    p.PacketsOut,
			Since:         p.Since,
			Initiator:     p.Initiator,
			Locators:      locatorsFrom(p.Locators),
			LastHandshake: p.LastHandshake,
			LastSeen:      p.LastSeen,
		}
	}
	return out
}

func statsFrom(s overlay.Stats) Stats {
	d, b, r := s.Drops, s.BEX, s.Relay
	return Stats{
		PacketsIn:     s.PacketsIn,
		PacketsOut:    s.PacketsOut,
		BytesIn:       s.BytesIn,
		BytesOut:      s.BytesOut,
		ControlIn:     s.ControlIn,
		ControlOut:    s.ControlOut,
		ESPIn:         s.ESPIn,
		ESPOut:        s.ESPOut,
		Delivered:     s.Delivered,
		STUNAnswered:  s.STUNAnswered,
		STUNMatched:   s.STUNMatched,
		ICEChecks:     s.ICEChecks,
		KeepalivesIn:  s.KeepalivesIn,
		KeepalivesOut: s.KeepalivesOut,
		Paths:         PathStats(s.Paths),
		IO:            IOStats(s.IO),
		Drops: Drops{
			Short:           d.Short,
			STUN:            d.STUN,
			Malformed:       d.Malformed,
			UnknownSPI:      d.UnknownSPI,
			Replay:          d.Replay,
			AuthFailure:     d.AuthFailure,
			NotForUs:        d.NotForUs,
			Unauthorized:    d.Unauthorized,
			ControlRejected: d.ControlRejected,
			ControlReplay:   d.ControlReplay,
			RateLimited:     d.RateLimited,
			ControlBacklog:  d.ControlBacklog,
			NotUDP:          d.NotUDP,
			NoListener:      d.NoListener,
			InboxFull:       d.InboxFull,
			QueueFull:       d.QueueFull,
			QueueDiscarded:  d.QueueDiscarded,
			SendErrors:      d.SendErrors,
		},
		BEX: BEXStats{
			Started:          b.Started,
			Completed:        b.Completed,
			FailedTimeout:    b.FailedTimeout,
			FailedRefused:    b.FailedRefused,
			FailedOther:      b.FailedOther,
			PuzzleDifficulty: b.PuzzleDifficulty,
		},
		Relay: RelayStats{
			ControlForwarded: r.ControlForwarded,
			ESPForwarded:     r.ESPForwarded,
			Rendezvoused:     r.Rendezvoused,
			Forwards:         r.Forwards,
			Unregistered:     r.Unregistered,
			Forged:           r.Forged,
			RateLimited:      r.RateLimited,
			TableFull:        r.TableFull,
		},
		Associations:     s.Associations,
		RelaysRegistered: s.RelaysRegistered,
		Registrations:    s.Registrations,
	}
}

func locatorsFrom(ls []overlay.LocatorInfo) []LocatorInfo {
	if ls == nil {
		return nil
	}
	out := make([]LocatorInfo, len(ls))
	for i, l := range ls {
		out[i] = LocatorInfo(l)
	}
	return out
}
