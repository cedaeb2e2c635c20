package turn

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	pturn "github.com/pion/turn/v5"

	"hipnet.dev/handshake/wire"
)

// Server is a TURN server (RFC 8656) for registered HIP hosts: UDP
// allocations only, for credentials made by Credentials with its secret
// for a HIT that Config.Allowed accepts. It runs pion/turn's goroutines:
// one reading Config.Conn and one per allocation reading its relayed
// socket.
type Server struct {
	cfg   settings
	pion  *pturn.Server
	stats counters
	reads readTracker // ReadFrom calls in progress on every socket of the server

	mu     sync.Mutex
	closed bool
	relays map[*relayConn]struct{} // open relayed sockets

	closeOnce sync.Once
	closeErr  error
}

// closeWait bounds how long Close waits for pion's goroutines to leave
// their sockets.
const closeWait = 5 * time.Second

// NewServer validates cfg and starts answering TURN on cfg.Conn. Errors
// satisfy errors.Is(err, ErrConfig) when cfg is unusable.
func NewServer(cfg Config) (*Server, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:    set,
		reads:  readTracker{idle: make(chan struct{}, 1)},
		relays: make(map[*relayConn]struct{}),
	}
	s.pion, err = pturn.NewServer(pturn.ServerConfig{
		PacketConnConfigs: []pturn.PacketConnConfig{{
			PacketConn:            &serverConn{PacketConn: set.conn, reads: &s.reads},
			RelayAddressGenerator: relayGenerator{s},
			PermissionHandler:     s.permit,
		}},
		LoggerFactory: pionLoggers{set.log},
		Realm:         set.realm,
		AuthHandler:   s.authenticate,
		EventHandler: pturn.EventHandler{
			OnAuth:              s.authEvent,
			OnAllocationCreated: s.allocationCreated,
			OnAllocationDeleted: s.allocationDeleted,
		},
	})
	if err != nil {
		return nil, err
	}
	set.log.Info("turn: serving", "addr", set.conn.LocalAddr(), "relay", set.relayIP, "realm", set.realm)
	return s, nil
}

// Credentials returns a TURN username and password for hit made with the
// server's secret, valid for ttl from now by the server's clock.
func (s *Server) Credentials(hit wire.HIT, ttl time.Duration) (username, password string) {
	return Credentials(s.cfg.secret, hit, s.cfg.now().Add(ttl))
}

// Realm returns the REALM the server challenges with.
func (s *Server) Realm() string { return s.cfg.realm }

// Addr returns the address of Config.Conn.
func (s *Server) Addr() net.Addr { return s.cfg.conn.LocalAddr() }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// Revoke ends every allocation of hit at once by closing its relayed
// sockets (pion then deletes the allocation), and returns how many it
// ended. Without it, a host that leaves the registration keeps relaying
// until its allocation's lifetime runs out: ChannelData and Send
// indications carry no credentials (RFC 8656 §11, §12), only the
// Refresh, CreatePermission and ChannelBind requests that keep them going
// do.
func (s *Server) Revoke(hit wire.HIT) int {
	id := hit.String()
	var victims []*relayConn
	s.mu.Lock()
	for rc := range s.relays {
		if rc.hit == id {
			victims = append(victims, rc)
		}
	}
	s.mu.Unlock()
	for _, rc := range victims {
		rc.Close()
	}
	if len(victims) > 0 {
		s.cfg.log.Info("turn: allocations revoked", "hit", id, "n", len(victims))
	}
	return len(victims)
}

// Close stops the server: it closes Config.Conn and every relayed socket,
// and returns once none of pion's goroutines is blocked on one of them
// (they exit right after). Further Allocates find no relayed socket.
// Close is idempotent and returns the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		relays := make([]*relayConn, 0, len(s.relays))
		for rc := range s.relays {
			relays = append(relays, rc)
		}
		s.mu.Unlock()

		s.closeErr = s.pion.Close() // closes Config.Conn; its read loop then closes the allocations
		for _, rc := range relays {
			rc.Close()
		}
		if !s.reads.wait(closeWait) {
			s.cfg.log.Warn("turn: sockets still read after Close", "wait", closeWait)
		}
		s.cfg.log.Info("turn: closed", "addr", s.cfg.conn.LocalAddr())
	})
	return s.closeErr
}

func (s *Server) allocationCreated(client, _ net.Addr, _, userID, _ string, relayed net.Addr, _ int) {
	s.stats.allocationsTotal.Add(1)
	s.cfg.log.Info("turn: allocation", "hit", userID, "client", client, "relayed", relayed)
}

func (s *Server) allocationDeleted(client, _ net.Addr, _, userID, _ string) {
	s.cfg.log.Info("turn: allocation ended", "hit", userID, "client", client)
}

// serverConn is Config.Conn as pion reads it: its reads are counted for
// Close's wait.
type serverConn struct {
	net.PacketConn
	reads *readTracker
}

func (c *serverConn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.reads.enter()
	defer c.reads.leave()
	return c.PacketConn.ReadFrom(p)
}

// readTracker counts ReadFrom calls in progress, so that Close can wait
// until pion's goroutines have left the sockets it closed.
type readTracker struct {
	n    atomic.Int64
	idle chan struct{} // capacity 1: a wake-up when n drops to zero
}

func (r *readTracker) enter() { r.n.Add(1) }

func (r *readTracker) leave() {
	if r.n.Add(-1) == 0 {
		select {
		case r.idle <- struct{}{}:
		default:
		}
	}
}

// wait reports whether n reached zero within d.
func (r *readTracker) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for r.n.Load() > 0 {
		select {
		case <-r.idle:
		case <-t.C:
			return false
		}
	}
	return true
}
