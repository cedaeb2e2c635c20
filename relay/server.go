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

	reg *registrar // who is registered: the one table (registrar.go)
	fwd *forwarder // what the stack hands over (forward.go, control.go)

	credsIssued, credsRefused atomic.Uint64

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
	s := &Server{cfg: cfg, log: log}
	s.reg = newRegistrar(cfg, log)
	s.fwd = newForwarder(fwdConfig{i1Rate: cfg.I1Rate}, s.reg, log)
	reg := &handshake.Registrar{
		Info: wire.RegInfo{
			MinLifetime: wire.DurationToLifetime(cfg.MinLifetime),
			MaxLifetime: wire.DurationToLifetime(cfg.MaxLifetime),
			Types:       offered,
		},
		Decide: s.reg.decide,
	}
	hs := cfg.Handshake
	hs.Registrar = reg
	st, err := overlay.New(overlay.Config{
		Identity: cfg.Identity, ListenAddr: cfg.ListenAddr, PacketConn: cfg.PacketConn, Logger: log,
		STUNServer: true,
		Forwarder:  s.fwd,
		Handshake:  hs,
	})
	if err != nil {
		return nil, err
	}
	s.stack = st
	// The socket's address is known now, a base exchange before any host
	// can have registered; until then, RELAY_TO sends nothing (sendable).
	s.fwd.setSelf(st.LocalAddr())
	if cfg.TURN != nil {
		if err := s.startTURN(cfg.TURN); err != nil {
			_ = st.Close()
			return nil, err
		}
	}
	return s, nil
}

// registered reports whether h holds a live registration (TURN
// credentials are for registered hosts only).
func (s *Server) registered(h wire.HIT) bool { return s.reg.registered(h) }

// Registrations returns the live registrations, in HIT order.
func (s *Server) Registrations() []overlay.Registration { return s.reg.list(time.Now()) }

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
