package nat

import (
	"github.com/pion/stun/v4"

	"net/netip"
	"slices"
	"sync"
	"time"
)

// Bounds of the Mux's table of the checks its sessions sent.
const (
	// txMax bounds the table. A session sends about one check per Ta
	// (DefaultPacing: 20 a second), and a check lives txLifetime, so this
	// is room for about ten sessions checking at once at the default
	// pacing; beyond that the oldest entries go first, and a response that
	// finds none is answered by the peer's retransmission of its check.
	txMax = 1024
	// txLifetime is how long a response can be routed to the session that
	// sent the check: a little longer than pion waits for one
	// (maxBindingRequestTimeout, 4 s, agent_config.go:62).
	txLifetime = 5 * time.Second
)

// Mux routes the STUN packets read from the node socket among the ICE
// sessions of the node (RFC 5770 §5.3: STUN is told apart from HIP and ESP
// on the one socket by the magic cookie; the node does that, the Mux
// takes it from there):
//
//   - a Binding request by its USERNAME, "<our ufrag>:<peer ufrag>"
//     (RFC 8445 §7.2.2, RFC 5770 §5.2), which names the session;
//   - a Binding success or error response by the transaction ID of the
//     check it answers and the address that check went to, both of which
//     the Mux noted when the session sent it, and only if its
//     MESSAGE-INTEGRITY verifies with the session's password; that answer
//     frees the entry. A forged response (a bare error, no integrity, from
//     an observer who saw the check) is dropped and leaves the entry for
//     the peer's genuine answer (RFC 8489 §16.1.1). The check is one
//     HMAC, for answers to our own checks only;
//   - nothing else: indications (the RFC 5770 §5.3 keepalives), other
//     methods, malformed messages and packets nobody waits for are left
//     to the caller.
//
// All sessions of a node share its local ufrag (the last 32 bits of its
// HIT), so the peer's ufrag tells them apart, but only by 32 bits (RFC
// 5770 §5.2): peers' HITs may end alike, by chance or because someone
// spent some 2³² hashes to make their HIT collide with a peer's and take
// over the route of that peer's checks. Sessions that share a USERNAME
// are kept together (at most maxShared); a request goes to the newest
// whose password its MESSAGE-INTEGRITY verifies with (one HMAC per
// session, only when there are several), so each peer's checks reach its
// own session.
//
// A Mux is safe for concurrent use. Its zero value is not usable; call
// NewMux.
type Mux struct {
	mu       sync.Mutex
	sessions map[string][]*Session // by the USERNAME the peer's requests carry, oldest first
	tx       map[[12]byte]txEntry
	ring     []txRing     // FIFO of tx, oldest first, at most txMax
	scratch  stun.Message // Deliver's decoding state, reused (under mu)
	checked  stun.Message // a copy of an answer, whose integrity is checked (under mu)
	head     int          // index of the oldest entry in ring
	n        int          // entries in ring
}

type txEntry struct {
	s      *Session
	to     netip.AddrPort // where the check went, unmapped
	expiry time.Time
}

type txRing struct {
	id     [12]byte
	expiry time.Time
}

// NewMux returns an empty Mux.
func NewMux() *Mux {
	return &Mux{
		sessions: make(map[string][]*Session),
		tx:       make(map[[12]byte]txEntry),
		ring:     make([]txRing, txMax),
	}
}

// NewSession starts a session (see the package function NewSession)
// registered in m: m routes the peer's requests and the responses to the
// session's checks to it, until Close.
func (m *Mux) NewSession(cfg SessionConfig, onSelected func(netip.AddrPort), onFailed func()) (*Session, error) {
	return newSession(cfg, onSelected, onFailed, m)
}

// Deliver hands a STUN packet read from the node socket to the session it
// belongs to and reports whether one took it. It copies what it keeps,
// does not block, and accepts any input. It allocates nothing of its own
// but the HMAC that checks an answer to one of its sessions' checks.
func (m *Mux) Deliver(pkt []byte, from netip.AddrPort) bool {
	if !IsSTUN(pkt) {
		return false
	}
	var s *Session
	m.mu.Lock()
	msg := &m.scratch
	if err := decode(msg, pkt); err == nil && msg.Type.Method == stun.MethodBinding {
		switch msg.Type.Class {
		case stun.ClassRequest:
			if user, err := msg.Get(stun.AttrUsername); err == nil {
				s = m.requestFor(m.sessions[string(user)], pkt)
			}
		case stun.ClassSuccessResponse, stun.ClassErrorResponse:
			e, ok := m.tx[msg.TransactionID]
			if ok && e.to == unmapped(from) && !time.Now().After(e.expiry) && m.authentic(e.s, pkt) {
				delete(m.tx, msg.TransactionID) // answered: the entry is free again
				s = e.s
			}
		}
	}
	release(msg)
	m.mu.Unlock()
	if s == nil {
		return false
	}
	return s.deliver(pkt, from)
}

// authentic is s.verifies with the Mux's reusable message; m.mu is held.
func (m *Mux) authentic(s *Session, pkt []byte) bool {
	return s.verifies(&m.checked, pkt)
}

// maxShared bounds the sessions kept under one USERNAME: each costs an
// HMAC per request for it. Beyond it a new session is not registered
// (its peer's checks do not reach it, and it stays relayed): pushing an
// older one out would let someone with a few colliding HITs push out the
// genuine peer's session, which is usually the oldest.
const maxShared = 4

// requestFor picks, among ss (sessions sharing a USERNAME, oldest
// first), the one a request pkt is for; m.mu is held.
func (m *Mux) requestFor(ss []*Session, pkt []byte) *Session {
	if len(ss) == 1 {
		return ss[0] // its agent checks the integrity, as always
	}
	for i := len(ss) - 1; i >= 0; i-- {
		if m.authentic(ss[i], pkt) {
			return ss[i]
		}
	}
	return nil
}

// add registers s by the USERNAME of the requests its peer sends, beside
// any session registered under it, unless maxShared are.
func (m *Mux) add(s *Session) {
	m.mu.Lock()
	if ss := m.sessions[s.user]; len(ss) < maxShared {
		m.sessions[s.user] = append(ss, s)
	}
	m.mu.Unlock()
}

// remove unregisters s. Its entries in the transaction table stay until
// they expire or are pushed out; a response that finds one goes to the
// closed session, which refuses it.
func (m *Mux) remove(s *Session) {
	m.mu.Lock()
	ss := slices.DeleteFunc(m.sessions[s.user], func(x *Session) bool { return x == s })
	if len(ss) == 0 {
		delete(m.sessions, s.user)
	} else {
		m.sessions[s.user] = ss
	}
	m.mu.Unlock()
}

// track notes that s sent a check with transaction ID id to the address
// to.
func (m *Mux) track(id [12]byte, to netip.AddrPort, s *Session) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.n > 0 && (m.n == len(m.ring) || now.After(m.ring[m.head].expiry)) {
		old := m.ring[m.head]
		if e, ok := m.tx[old.id]; ok && e.expiry.Equal(old.expiry) {
			delete(m.tx, old.id)
		}
		m.head = (m.head + 1) % len(m.ring)
		m.n--
	}
	exp := now.Add(txLifetime)
	m.ring[(m.head+m.n)%len(m.ring)] = txRing{id: id, expiry: exp}
	m.n++
	m.tx[id] = txEntry{s: s, to: unmapped(to), expiry: exp}
}

// unmapped is a with an IPv4-mapped IPv6 address as IPv4, as sessions see
// addresses.
func unmapped(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
