package relay

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
	"hipnet.dev/relay/turn"
)

// Server is a running relay.
type Server struct {
	cfg   Config
	log   *slog.Logger
	stack *overlay.Stack
	turn  *turn.Server
	creds *overlay.InnerConn

	mu   sync.Mutex
	regs map[wire.HIT]time.Time // granted, until

	refusedPolicy, refusedFull atomic.Uint64
	credsIssued, credsRefused  atomic.Uint64

	wg sync.WaitGroup
}

// CredentialsPort is the inner UDP port on which a registered host asks the
// relay for TURN credentials, over its HIP association.
const CredentialsPort = 65533

// New starts a relay.
func New(cfg Config) (*Server, error) {
	if cfg.Identity == nil {
		return nil, errors.New("relay: Config.Identity is required")
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = defaultListen
	}
	if cfg.MaxRegistrations <= 0 {
		cfg.MaxRegistrations = defaultMaxRegistrations
	}
	if cfg.MinLifetime <= 0 {
		cfg.MinLifetime = defaultMinLifetime
	}
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = defaultMaxLifetime
	}
	if cfg.MaxLifetime < cfg.MinLifetime {
		return nil, errors.New("relay: MaxLifetime below MinLifetime")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, regs: map[wire.HIT]time.Time{}}
	reg := &handshake.Registrar{
		Info: wire.RegInfo{
			MinLifetime: wire.DurationToLifetime(cfg.MinLifetime),
			MaxLifetime: wire.DurationToLifetime(cfg.MaxLifetime),
			Types:       []byte{wire.RegTypeRendezvous, wire.RegTypeRelayUDPHIP},
		},
		Decide: s.decide,
	}
	st, err := overlay.New(overlay.Config{
		Identity: cfg.Identity, ListenAddr: cfg.ListenAddr, PacketConn: cfg.PacketConn, Logger: log,
		STUNServer: true,
		Relay:      &overlay.RelayConfig{I1Rate: cfg.I1Rate},
		Handshake:  handshake.Config{Registrar: reg},
	})
	if err != nil {
		return nil, err
	}
	s.stack = st
	if cfg.TURN != nil {
		if err := s.startTURN(cfg.TURN); err != nil {
			_ = st.Close()
			return nil, err
		}
	}
	return s, nil
}

// decide is the registration policy (handshake.Registrar.Decide; on the
// stack's control goroutine).
func (s *Server) decide(peer wire.HIT, req wire.RegRequest) (wire.RegResponse, []wire.RegFailed) {
	var grant []byte
	var failed []wire.RegFailed
	offered := func(t uint8) bool { return t == wire.RegTypeRendezvous || t == wire.RegTypeRelayUDPHIP }
	for _, t := range req.Types {
		if offered(t) {
			grant = append(grant, t)
		} else {
			failed = append(failed, wire.RegFailed{FailureType: wire.RegFailureTypeUnavailable, Types: []byte{t}})
		}
	}
	if req.Lifetime == 0 { // cancellation (RFC 8003 §5)
		s.mu.Lock()
		delete(s.regs, peer)
		s.mu.Unlock()
		s.log.Info("registration cancelled", "host", peer.String())
		return wire.RegResponse{Lifetime: 0, Types: grant}, failed
	}
	if len(grant) == 0 {
		return wire.RegResponse{}, failed
	}
	if s.cfg.Allow != nil && !s.cfg.Allow(peer) {
		s.refusedPolicy.Add(1)
		s.log.Info("registration refused", "host", peer.String(), "reason", "not allowed")
		return wire.RegResponse{}, append(failed, wire.RegFailed{FailureType: wire.RegFailureCredentialsRequired, Types: grant})
	}
	lo, hi := wire.DurationToLifetime(s.cfg.MinLifetime), wire.DurationToLifetime(s.cfg.MaxLifetime)
	life := min(max(req.Lifetime, lo), hi)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.regs[peer]; !ok && len(s.regs) >= s.cfg.MaxRegistrations {
		s.pruneLocked(now)
		if len(s.regs) >= s.cfg.MaxRegistrations {
			s.refusedFull.Add(1)
			s.log.Warn("registration refused", "host", peer.String(), "reason", "full", "max", s.cfg.MaxRegistrations)
			return wire.RegResponse{}, append(failed, wire.RegFailed{FailureType: wire.RegFailureInsufficientResources, Types: grant})
		}
	}
	s.regs[peer] = now.Add(wire.LifetimeToDuration(life))
	return wire.RegResponse{Lifetime: life, Types: grant}, failed
}

func (s *Server) pruneLocked(now time.Time) {
	for h, until := range s.regs {
		if !now.Before(until) {
			delete(s.regs, h)
		}
	}
}

// registered reports whether h holds a live registration on the stack.
func (s *Server) registered(h wire.HIT) bool {
	for _, r := range s.stack.Registrations() {
		if r.Peer == h {
			return true
		}
	}
	return false
}

// HIT returns the relay's HIT.
func (s *Server) HIT() wire.HIT { return s.stack.HIT() }

// Addr returns the relay's HIP address.
func (s *Server) Addr() netip.AddrPort { return s.stack.LocalAddr() }

// TURNAddr returns the TURN service's address, or nil.
func (s *Server) TURNAddr() net.Addr {
	if s.turn == nil {
		return nil
	}
	return s.turn.Addr()
}

// Status returns the relay stack's status (hipnet.StatusHandler serves it).
func (s *Server) Status() overlay.Status { return s.stack.Status() }

// Stack returns the relay's HIP stack (introspection, tests).
func (s *Server) Stack() *overlay.Stack { return s.stack }

// Close stops the relay: CLOSE to every host, then the sockets.
func (s *Server) Close() error {
	err := s.stack.Close()
	if s.turn != nil {
		if e := s.turn.Close(); err == nil {
			err = e
		}
	}
	s.wg.Wait()
	return err
}
