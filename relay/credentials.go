package relay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
	"hipnet.dev/relay/turn"
)

// TURN credentials over HIP. A registered host asks on the inner UDP port
// CredentialsPort of its association with the relay, so the request is
// authenticated and encrypted by ESP and the relay knows the asker by its
// HIT; the answer carries a time-limited username and password
// (relay/turn) and the TURN server's port. A host that is not registered
// gets a refusal. Wire format, all big-endian:
//
//	request:  0x02
//	answer:   0x82 | port(16) | ulen(16) | username | plen(16) | password
//	refusal:  0x83

const (
	opCreds        = 0x02
	opCredsReply   = 0x82
	opCredsRefused = 0x83
)

// ErrNotRegistered: the relay refused TURN credentials.
var ErrNotRegistered = errors.New("relay: not registered: no TURN credentials")

// TURNCredentials are what a registered host gets.
type TURNCredentials struct {
	Port               uint16 // the TURN server's port, on the relay's address
	Username, Password string
}

func (s *Server) startTURN(tc *TURNConfig) error {
	conn := tc.PacketConn
	if conn == nil {
		var err error
		if conn, err = net.ListenPacket("udp", tc.ListenAddr); err != nil {
			return fmt.Errorf("relay: turn: %w", err)
		}
	}
	ts, err := turn.NewServer(turn.Config{
		Conn: conn, RelayIP: tc.RelayIP, Logger: s.log.With("service", "turn"),
		Allowed: s.registered, RelayListen: tc.RelayListen,
	})
	if err != nil {
		_ = conn.Close()
		return err
	}
	s.turn = ts
	c, err := s.stack.ListenInner(CredentialsPort)
	if err != nil {
		return err
	}
	s.creds = c
	life := tc.CredentialLifetime
	if life <= 0 {
		life = defaultCredLifetime
	}
	s.wg.Add(1)
	go s.serveCreds(c, life)
	return nil
}

func (s *Server) serveCreds(c *overlay.InnerConn, life time.Duration) {
	defer s.wg.Done()
	buf := make([]byte, 16)
	var port uint16
	if a, ok := s.turn.Addr().(*net.UDPAddr); ok {
		port = uint16(a.Port)
	}
	for {
		n, from, err := c.ReadFromAddr(buf)
		if err != nil {
			return
		}
		if n < 1 || buf[0] != opCreds {
			continue
		}
		if !s.registered(from.HIT) {
			s.credsRefused.Add(1)
			s.log.Info("turn credentials refused", "host", from.HIT.String())
			_, _ = c.WriteTo([]byte{opCredsRefused}, &from)
			continue
		}
		user, pass := s.turn.Credentials(from.HIT, life)
		out := []byte{opCredsReply}
		out = binary.BigEndian.AppendUint16(out, port)
		out = binary.BigEndian.AppendUint16(out, uint16(len(user)))
		out = append(out, user...)
		out = binary.BigEndian.AppendUint16(out, uint16(len(pass)))
		out = append(out, pass...)
		s.credsIssued.Add(1)
		_, _ = c.WriteTo(out, &from)
	}
}

// ParseCredentials reads a credentials answer.
func ParseCredentials(b []byte) (TURNCredentials, error) {
	if len(b) == 1 && b[0] == opCredsRefused {
		return TURNCredentials{}, ErrNotRegistered
	}
	bad := errors.New("relay: malformed credentials answer")
	if len(b) < 5 || b[0] != opCredsReply {
		return TURNCredentials{}, bad
	}
	port := binary.BigEndian.Uint16(b[1:])
	ul := int(binary.BigEndian.Uint16(b[3:]))
	b = b[5:]
	if len(b) < ul+2 {
		return TURNCredentials{}, bad
	}
	user := string(b[:ul])
	b = b[ul:]
	pl := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) != pl {
		return TURNCredentials{}, bad
	}
	return TURNCredentials{Port: port, Username: user, Password: string(b)}, nil
}

// RequestCredentials asks the relay named relayHIT for TURN credentials
// over st's association with it (started if needed), retrying each second
// until ctx ends.
func RequestCredentials(ctx context.Context, st *overlay.Stack, relayHIT wire.HIT) (TURNCredentials, error) {
	if err := st.Connect(ctx, relayHIT); err != nil {
		return TURNCredentials{}, err
	}
	c, err := st.ListenInner(0)
	if err != nil {
		return TURNCredentials{}, err
	}
	defer c.Close()
	to := overlay.Addr{HIT: relayHIT, Port: CredentialsPort}
	buf := make([]byte, 1024)
	for {
		if _, err := c.WriteTo([]byte{opCreds}, &to); err != nil {
			return TURNCredentials{}, err
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, from, err := c.ReadFromAddr(buf)
		if err == nil && from.HIT == relayHIT {
			return ParseCredentials(buf[:n])
		}
		if ctx.Err() != nil {
			return TURNCredentials{}, ctx.Err()
		}
	}
}
