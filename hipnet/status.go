package hipnet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"hipnet.dev/handshake/wire"
)

// Status is a snapshot of a node (Node.Status) or of a relay, for
// operators: what StatusHandler serves as JSON, `hip status` prints and
// WriteMetrics writes in the Prometheus format.
type Status struct {
	HIT           HIT            `json:"hit"`                     // the node's own HIT
	LocalAddr     netip.AddrPort `json:"local_addr"`              // the address of its UDP socket
	Relays        []RelayStatus  `json:"relays,omitempty"`        // its Config.Relays, in that order
	Registrations []Registration `json:"registrations,omitempty"` // on a relay: the hosts registered with it
	Peers         []PeerInfo     `json:"peers"`                   // its associations, as Node.Peers
	Stats         Stats          `json:"stats"`                   // its counters, as Node.Stats
}

// RelayStatus is one of a node's Config.Relays in a Status.
type RelayStatus struct {
	HIT        HIT            `json:"hit"`                 // zero until learnt, in the opportunistic mode
	Addr       netip.AddrPort `json:"addr"`                // the relay's UDP address
	Registered bool           `json:"registered"`          // whether the relay holds the node's registration now
	Reflexive  netip.AddrPort `json:"reflexive,omitempty"` // the node's address as the relay's STUN service sees it
}

// Registration is a host's registration with a registrar (RFC 8003): in
// a relay's Status, one host the relay serves.
type Registration struct {
	Peer     HIT                   // the registered host
	Granted  []uint8               // registration types granted: 1 RENDEZVOUS (RFC 8004), 2 RELAY_UDP_HIP (RFC 5770), 3 RELAY_UDP_ESP (RFC 9028)
	Lifetime uint8                 // the granted lifetime, as RFC 8003 §4.1 codes it (Duration decodes it); 0: cancelled
	Expires  time.Time             // when the registration ends unless renewed
	Failed   []RegistrationFailure // types refused, and why
}

// Duration is the granted lifetime, Lifetime decoded.
func (r Registration) Duration() time.Duration { return wire.LifetimeToDuration(r.Lifetime) }

// RegistrationFailure is a REG_FAILED of RFC 8003 §4.3: registration
// types a registrar refused, and why.
type RegistrationFailure struct {
	FailureType uint8 // 0: credentials required, 1: type unavailable, 2: insufficient resources, ... (RFC 8003 §4.3, RFC 9028 §7.8)
	Types       []uint8
}

// PeerInfo describes one association with a peer (Node.Peers,
// Status.Peers). The counters start with the association's base exchange.
type PeerInfo struct {
	HIT HIT // the peer's HIT

	// State is the association's state (RFC 7401 §4.4.2): "ESTABLISHED"
	// carries data; "UNASSOCIATED", "I1-SENT", "I2-SENT" and "R2-SENT" come
	// before, "CLOSING", "CLOSED" and "E-FAILED" after.
	State string

	// Path is "direct" when ESP goes straight to the peer's Locator, or
	// "relayed" when it goes through a relay of Config.Relays (Locator is
	// then the relay's address) until ICE finds a direct path.
	Path    string
	Locator netip.AddrPort // where the node sends to the peer now

	// The suites the base exchange agreed, by name (e.g. "ECDSA/SHA-384",
	// "P-256", "AES-128-CBC", "AES-128-GCM with 16-octet ICV");
	// empty until it has.
	HITSuite  string // the Responder's HIT suite
	DHGroup   string // the Diffie-Hellman group
	HIPCipher string // the cipher of HIP's ENCRYPTED parameters
	ESPSuite  string // the ESP transform

	InSPI  uint32 // the inbound ESP security association's SPI
	OutSPI uint32 // the outbound one's

	BytesIn, BytesOut     uint64 // payload octets of inner datagrams received and sent
	PacketsIn, PacketsOut uint64 // inner datagrams received and sent

	Since     time.Time // when the association entered State
	Initiator bool      // whether this node started the base exchange

	// Locators are the peer's locators of a direct association (RFC 8046
	// §5.1), the one in use first; empty for a relayed one.
	Locators []LocatorInfo `json:",omitempty"`

	// LastHandshake is when the association's last base exchange or rekey
	// completed; LastSeen when its last authenticated packet arrived (to
	// the second). Zero: not yet.
	LastHandshake, LastSeen time.Time
}

// LocatorInfo is one locator of a peer (PeerInfo.Locators).
type LocatorInfo struct {
	Addr netip.AddrPort
	// State is "active" (verified), "unverified" (not yet verified: no
	// data goes there), "deprecated" (withdrawn by the peer or expired)
	// or "failed" (a check went unanswered; retried with back-off).
	State string
	// Origin says where it was learnt: "config" (Config.Peers, AddPeer,
	// or the base exchange), "locator-set" (the peer announced it),
	// "packet" (the peer's packets came from it: a NAT rebinding).
	Origin       string
	Current      bool          // the association's traffic goes here
	Preferred    bool          // preferred by the peer or by the base exchange
	RTT          time.Duration // smoothed round trip of its checks; zero: not measured
	LastReceived time.Time     // the last authenticated packet from it
}

// Stats are a node's counters since it started, and a few gauges, read
// with Node.Stats (and in Status.Stats). Every datagram that reaches the
// node's UDP socket is counted in PacketsIn and then either handled or
// counted in exactly one Drops field. StatusHandler and WriteMetrics serve
// them in the Prometheus text format.
type Stats struct {
	PacketsIn, PacketsOut uint64 // UDP datagrams received and sent
	BytesIn, BytesOut     uint64 // their UDP payload octets
	ControlIn, ControlOut uint64 // HIP control packets received (well formed) and sent
	ESPIn, ESPOut         uint64 // ESP packets authenticated and sent
	Delivered             uint64 // inner datagrams handed to a connection
	STUNAnswered          uint64 // STUN Binding Requests answered (Config.STUNServer)
	STUNMatched           uint64 // STUN Binding responses matched to the node's own requests
	ICEChecks             uint64 // ICE connectivity checks and answers received
	KeepalivesIn          uint64 // NAT keepalives received: ESP dummy packets (authenticated), STUN Binding Indications
	KeepalivesOut         uint64 // NAT keepalives sent (ESP dummy packets) on idle direct paths
	Drops                 Drops
	BEX                   BEXStats
	Relay                 RelayStats // on a relay (cmd/hip-relay): its forwarding and refusals
	Paths                 PathStats  // mobility and failover of direct associations

	// Gauges, read when Stats is called.
	Associations     map[string]int // associations by PeerInfo.State ("ESTABLISHED", "I1-SENT", ...)
	RelaysRegistered int            // Config.Relays that hold the node's registration now
	Registrations    int            // on a relay: hosts registered with it now
}

// PathStats count what mobility and failover did (Stats.Paths).
type PathStats struct {
	Switches uint64 // an association's traffic moved to another locator (logged as "path switch")
	// LostInSwitch counts the datagrams sent into a path that had died,
	// between its last sign of life and the switch away from it: what a
	// failover may have lost. Stream data is retransmitted; datagrams are
	// not.
	LostInSwitch   uint64
	ProbesSent     uint64 // address checks sent: UPDATE with ECHO_REQUEST_SIGNED (RFC 8046 §5.4)
	ProbesAnswered uint64 // their signed answers
	ProbesRefused  uint64 // checks not sent to an unverified address over its credit (RFC 8046 §5.6)
	EchoAnswered   uint64 // the peers' checks this node answered
	Announcements  uint64 // UPDATEs announcing this node's addresses (RFC 8046 §5.2)
	Resent         uint64 // packets sent during a failed path check, sent again on the new path
	IdleClosed     uint64 // associations closed after Config.IdleTimeout without data
}

// BEXStats count base exchanges (Stats.BEX).
type BEXStats struct {
	Started   uint64 // as Initiator (I1 sent) or Responder (an I2 accepted)
	Completed uint64 // reached ESTABLISHED (or R2-SENT, the Responder's end)

	// Failed base exchanges, by reason.
	FailedTimeout uint64 // the peer did not answer (retransmissions exhausted)
	FailedRefused uint64 // the peer refused (an authenticated NOTIFY), or Config.Authorize refused the peer
	FailedOther   uint64 // anything else: bad signature, no common suite, ...

	// PuzzleDifficulty is the puzzle difficulty #K (RFC 7401 §4.1.2) the
	// node's R1s ask for now: it rises while I2s arrive faster than the
	// node wants to verify them, and falls back after.
	PuzzleDifficulty uint8
}

// Drops count the datagrams and writes a node dropped, by reason
// (Stats.Drops).
type Drops struct {
	Short           uint64 // shorter than 8 octets: neither HIP, ESP nor STUN
	STUN            uint64 // STUN neither answered nor matched: indications, other methods, unmatched responses, requests while Config.STUNServer is off, bad FINGERPRINT, malformed
	Malformed       uint64 // control packet that does not parse (or has a non-zero checksum); malformed ESP or inner UDP
	UnknownSPI      uint64 // ESP for no inbound security association
	Replay          uint64 // ESP replayed, or left of the anti-replay window
	AuthFailure     uint64 // ESP whose integrity check value did not verify
	NotForUs        uint64 // HIP packet for another receiver HIT
	Unauthorized    uint64 // from a peer Config.Authorize refused
	ControlRejected uint64 // HIP packet the state machine refused (unexpected, bad MAC or signature, ...)
	ControlReplay   uint64 // HIP packet refused as a replay: a spent I2 solution, an old UPDATE SEQ, a stale R1
	RateLimited     uint64 // I1 not answered: its source, its address or the node is over its R1 rate
	ControlBacklog  uint64 // control packet dropped because the node's handshake processing was behind
	NotUDP          uint64 // ESP payload that is not inner UDP (e.g. dummy packets, RFC 4303 §2.6)
	NoListener      uint64 // inner UDP to a port nothing listens on
	InboxFull       uint64 // a connection's receive queue was full (its reader too slow)
	QueueFull       uint64 // write refused: too much data already waiting for a base exchange
	QueueDiscarded  uint64 // writes that waited for a base exchange, discarded when it failed
	SendErrors      uint64 // UDP socket write errors
}

// Total returns the sum of all drop counters.
func (d Drops) Total() uint64 {
	return d.Short + d.STUN + d.Malformed + d.UnknownSPI + d.Replay + d.AuthFailure +
		d.NotForUs + d.Unauthorized + d.ControlRejected + d.ControlReplay + d.RateLimited +
		d.ControlBacklog + d.NotUDP + d.NoListener + d.InboxFull + d.QueueFull + d.QueueDiscarded + d.SendErrors
}

// RelayStats count a relay's work (Stats.Relay); they stay zero on a node
// that is not a relay.
type RelayStats struct {
	ControlForwarded uint64 // HIP control packets relayed, either direction
	ESPForwarded     uint64 // ESP packets forwarded by SPI
	Rendezvoused     uint64 // I1s forwarded to RENDEZVOUS hosts with FROM (RFC 8004)
	Forwards         uint64 // gauge: ESP forwarding entries now

	// Packets refused, by reason.
	Unregistered uint64 // to or for a HIT without a relay registration
	Forged       uint64 // RELAY_TO whose RELAY_HMAC did not verify, or relay parameters from outside
	RateLimited  uint64 // I1s over a registered host's rate
	TableFull    uint64 // ESP forwarding entries refused: table full
}

// Stats returns the node's counters and gauges. Nothing leaves the
// process unless the application sends it.
func (n *Node) Stats() Stats { return statsFrom(n.stack.Stats()) }

// Status returns a snapshot of the node.
func (n *Node) Status() Status { return statusFrom(n.stack.Status()) }

// Ping sends one echo request over the association with peer (starting
// the base exchange if needed) and returns the round-trip time. Every node
// answers pings from its authenticated peers, on the reserved inner UDP
// port 65532, as IP hosts answer ICMP echo. seq tells replies apart; size
// is the payload size (at least 16 octets). It gives up with an error
// after timeout.
func (n *Node) Ping(ctx context.Context, peer HIT, seq uint64, size int, timeout time.Duration) (time.Duration, error) {
	if err := n.stack.Connect(ctx, peer); err != nil {
		return 0, err
	}
	return n.stack.Ping(ctx, peer, seq, size, timeout)
}

// StatusSource is what StatusHandler reports on: a *Node, or anything
// else that can report a Status (cmd/hip-relay adapts its relay server).
type StatusSource interface{ Status() Status }

// StatusHandler serves src's status for operators and monitoring, on any
// path the application mounts it at:
//
//	GET .../status   JSON: Status (what `hip status -url` reads)
//	GET .../metrics  the Prometheus text exposition format (version 0.0.4)
//
// It exposes HITs, addresses and traffic counters: mount it where only
// operators reach it (a loopback address, a Unix socket).
func StatusHandler(src StatusSource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/metrics"):
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			WriteMetrics(w, src.Status())
		default:
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(src.Status())
		}
	})
}

// WriteMetrics writes st in the Prometheus text exposition format.
func WriteMetrics(w io.Writer, st Status) {
	s := st.Stats
	hit := fmt.Sprintf("hit=%q", st.HIT.String())
	metric := func(name, typ, help string, samples ...string) {
		fmt.Fprintf(w, "# HELP hipnet_%s %s\n# TYPE hipnet_%s %s\n", name, help, name, typ)
		for _, smp := range samples {
			fmt.Fprintf(w, "hipnet_%s%s\n", name, smp)
		}
	}
	one := func(v any) string { return fmt.Sprintf("{%s} %v", hit, v) }
	lab := func(k, v string, x any) string { return fmt.Sprintf("{%s,%s=%q} %v", hit, k, v, x) }

	metric("packets_total", "counter", "UDP datagrams by direction.", lab("dir", "in", s.PacketsIn), lab("dir", "out", s.PacketsOut))
	metric("bytes_total", "counter", "UDP payload octets by direction.", lab("dir", "in", s.BytesIn), lab("dir", "out", s.BytesOut))
	metric("control_packets_total", "counter", "HIP control packets by direction.", lab("dir", "in", s.ControlIn), lab("dir", "out", s.ControlOut))
	metric("esp_packets_total", "counter", "ESP packets by direction.", lab("dir", "in", s.ESPIn), lab("dir", "out", s.ESPOut))
	metric("bex_started_total", "counter", "Base exchanges started.", one(s.BEX.Started))
	metric("bex_completed_total", "counter", "Base exchanges completed.", one(s.BEX.Completed))
	metric("bex_failed_total", "counter", "Base exchanges failed, by reason.",
		lab("reason", "timeout", s.BEX.FailedTimeout), lab("reason", "refused", s.BEX.FailedRefused), lab("reason", "other", s.BEX.FailedOther))
	d := s.Drops
	metric("drops_total", "counter", "Datagrams dropped, by reason.",
		lab("reason", "short", d.Short), lab("reason", "stun", d.STUN), lab("reason", "malformed", d.Malformed),
		lab("reason", "unknown_spi", d.UnknownSPI), lab("reason", "replay", d.Replay), lab("reason", "auth_failure", d.AuthFailure),
		lab("reason", "not_for_us", d.NotForUs), lab("reason", "unauthorized", d.Unauthorized),
		lab("reason", "control_rejected", d.ControlRejected), lab("reason", "control_replay", d.ControlReplay),
		lab("reason", "rate_limited", d.RateLimited), lab("reason", "control_backlog", d.ControlBacklog),
		lab("reason", "not_udp", d.NotUDP), lab("reason", "no_listener", d.NoListener), lab("reason", "inbox_full", d.InboxFull),
		lab("reason", "queue_full", d.QueueFull), lab("reason", "queue_discarded", d.QueueDiscarded), lab("reason", "send_errors", d.SendErrors))
	states := make([]string, 0, len(s.Associations))
	for k := range s.Associations {
		states = append(states, k)
	}
	sort.Strings(states)
	var assoc []string
	for _, k := range states {
		assoc = append(assoc, lab("state", k, s.Associations[k]))
	}
	metric("associations", "gauge", "Associations by RFC 7401 state.", assoc...)
	metric("relays_registered", "gauge", "Configured relays that hold this node's registration.", one(s.RelaysRegistered))
	metric("registrations", "gauge", "Hosts registered with this node (as a registrar).", one(s.Registrations))
	r := s.Relay
	metric("relay_forwarded_total", "counter", "Packets a relay forwarded, by kind.", lab("kind", "control", r.ControlForwarded), lab("kind", "esp", r.ESPForwarded), lab("kind", "rendezvous", r.Rendezvoused))
	metric("relay_drops_total", "counter", "Packets a relay refused, by reason.",
		lab("reason", "unregistered", r.Unregistered), lab("reason", "forged", r.Forged),
		lab("reason", "rate_limited", r.RateLimited), lab("reason", "table_full", r.TableFull))
}
