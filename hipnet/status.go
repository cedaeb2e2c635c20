package hipnet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
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
//
// # JSON
//
// The JSON of a Status (StatusHandler, `hip status -json`) is stable: a key
// is never renamed, removed or given another type or unit; new keys may be
// added, so readers must ignore keys they do not know. It follows one
// style throughout, the json tags of Status and of every type in it:
//
//   - keys are snake_case ("local_addr", "bytes_in", "auth_failure");
//   - a HIT is its IPv6 text form ("2001:20::1"), the zero HIT "::";
//   - an address is "host:port" ("192.0.2.1:10500", "[2001:db8::1]:10500"),
//     and "" when there is none;
//   - a time is RFC 3339 text ("2026-01-02T15:04:05.123Z": fractional
//     seconds when there are any, the node's UTC offset); a time that has
//     not happened yet (PeerInfo.LastSeen before any packet, ...) is left
//     out;
//   - a duration is a number whose key names its unit: "rtt_ms"
//     (milliseconds), "lifetime_s" (seconds);
//   - registration types are their RFC names ("RELAY_UDP_HIP"), failure
//     types their number with a "reason" in words (Registration);
//   - counters are JSON numbers (uint64: exact up to 2^53 in readers that
//     use float64, as JavaScript does).
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
	HIT        HIT            `json:"hit"`                // zero until learnt, in the opportunistic mode
	Addr       netip.AddrPort `json:"addr"`               // the relay's UDP address
	Registered bool           `json:"registered"`         // whether the relay holds the node's registration now
	Reflexive  netip.AddrPort `json:"reflexive,omitzero"` // the node's address as the relay's STUN service sees it; zero: not learnt yet
}

// Registration is a host's registration with a registrar (RFC 8003): in
// a relay's Status, one host the relay serves.
//
// Its JSON (MarshalJSON) names the types and decodes the lifetime:
//
//	{"peer": "2001:20::1", "granted": ["RELAY_UDP_HIP"], "lifetime_s": 128,
//	 "expires": "2026-01-02T15:04:05Z",
//	 "failed": [{"failure_type": 9, "reason": "simultaneous rendezvous and control relay prohibited", "types": ["RENDEZVOUS"]}]}
type Registration struct {
	Peer     HIT                   `json:"peer"`             // the registered host
	Granted  []uint8               `json:"granted"`          // registration types granted: 1 RENDEZVOUS (RFC 8004), 2 RELAY_UDP_HIP (RFC 5770), 3 RELAY_UDP_ESP (RFC 9028); JSON: their names
	Lifetime uint8                 `json:"lifetime_s"`       // the granted lifetime, as RFC 8003 §4.1 codes it (Duration decodes it); 0: cancelled; JSON: Duration in seconds
	Expires  time.Time             `json:"expires"`          // when the registration ends unless renewed
	Failed   []RegistrationFailure `json:"failed,omitempty"` // types refused, and why
}

// Duration is the granted lifetime, Lifetime decoded.
func (r Registration) Duration() time.Duration { return wire.LifetimeToDuration(r.Lifetime) }

// RegistrationFailure is a REG_FAILED of RFC 8003 §4.3: registration
// types a registrar refused, and why. Its JSON adds the reason in words
// ("reason": wire.RegFailureName) and names the types as Registration's.
type RegistrationFailure struct {
	FailureType uint8   `json:"failure_type"` // 0: credentials required, 1: type unavailable, 2: insufficient resources, ... (RFC 8003 §4.3, RFC 9028 §7.8)
	Types       []uint8 `json:"types"`        // JSON: their names
}

// PeerInfo describes one association with a peer (Node.Peers,
// Status.Peers). The counters start with the association's base exchange.
type PeerInfo struct {
	HIT HIT `json:"hit"` // the peer's HIT

	// State is the association's state (RFC 7401 §4.4.2): "ESTABLISHED"
	// carries data; "UNASSOCIATED", "I1-SENT", "I2-SENT" and "R2-SENT" come
	// before, "CLOSING", "CLOSED" and "E-FAILED" after.
	State string `json:"state"`

	// Path is "direct" when ESP goes straight to the peer's Locator, or
	// "relayed" when it goes through a relay of Config.Relays (Locator is
	// then the relay's address) until ICE finds a direct path.
	Path    string         `json:"path"`
	Locator netip.AddrPort `json:"locator"` // where the node sends to the peer now

	// The suites the base exchange agreed, by name (e.g. "ECDSA/SHA-384",
	// "P-256", "AES-128-CBC", "AES-128-GCM with 16-octet ICV");
	// empty until it has.
	HITSuite  string `json:"hit_suite"`  // the Responder's HIT suite
	DHGroup   string `json:"dh_group"`   // the Diffie-Hellman group
	HIPCipher string `json:"hip_cipher"` // the cipher of HIP's ENCRYPTED parameters
	ESPSuite  string `json:"esp_suite"`  // the ESP transform

	InSPI  uint32 `json:"in_spi"`  // the inbound ESP security association's SPI
	OutSPI uint32 `json:"out_spi"` // the outbound one's

	// Inner datagrams, and their payload octets, that the association
	// carried: application data and echoes (Node.Ping), not HIP control
	// packets. An association that carries only control, as a node's
	// with its relay does, stays at zero; what a relay forwards for its
	// hosts is counted in Stats.Relay, not here.
	BytesIn    uint64 `json:"bytes_in"`
	BytesOut   uint64 `json:"bytes_out"`
	PacketsIn  uint64 `json:"packets_in"`
	PacketsOut uint64 `json:"packets_out"`

	Since     time.Time `json:"since"`     // when the association entered State
	Initiator bool      `json:"initiator"` // whether this node started the base exchange

	// Locators are the peer's locators (RFC 8046 §5.1), the one in use
	// first: its addresses, and for an association through a relay the
	// relay and the pair ICE nominated. Empty while the association is
	// idle and has a single locator (its state is then rebuilt on use).
	Locators []LocatorInfo `json:"locators,omitempty"`

	// LastHandshake is when the association's last base exchange or rekey
	// completed; LastSeen when its last authenticated ESP packet arrived
	// (to the second), so it stays zero on an association that carries
	// only HIP control, as a node's with its relay. Zero (left out of the
	// JSON): not yet.
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	LastSeen      time.Time `json:"last_seen,omitzero"`
}

// LocatorInfo is one locator of a peer (PeerInfo.Locators). Its JSON
// (MarshalJSON) gives RTT in milliseconds, as "rtt_ms".
type LocatorInfo struct {
	Addr netip.AddrPort `json:"addr"`
	// State is "active" (verified), "unverified" (not yet verified: no
	// data goes there), "deprecated" (withdrawn by the peer or expired)
	// or "failed" (a check went unanswered; retried with back-off).
	State string `json:"state"`
	// Origin says where it was learnt: "config" (Config.Peers, AddPeer,
	// or the base exchange), "locator-set" (the peer announced it),
	// "packet" (the peer's packets came from it: a NAT rebinding), "ice"
	// or "relay".
	Origin       string        `json:"origin"`
	Current      bool          `json:"current"`                // the association's traffic goes here
	Preferred    bool          `json:"preferred"`              // preferred by the peer or by the base exchange
	RTT          time.Duration `json:"rtt_ms"`                 // smoothed round trip of its checks; zero: not measured
	LastReceived time.Time     `json:"last_received,omitzero"` // the last authenticated packet from it; zero: none yet
}

// registrationJSON is Registration's JSON: types by name, the lifetime
// decoded.
type registrationJSON struct {
	Peer      HIT                   `json:"peer"`
	Granted   []string              `json:"granted"`
	LifetimeS float64               `json:"lifetime_s"`
	Expires   time.Time             `json:"expires"`
	Failed    []RegistrationFailure `json:"failed,omitempty"`
}

// MarshalJSON writes r as Registration's documentation shows.
func (r Registration) MarshalJSON() ([]byte, error) {
	return json.Marshal(registrationJSON{
		Peer:      r.Peer,
		Granted:   regTypeNames(r.Granted),
		LifetimeS: r.Duration().Seconds(),
		Expires:   r.Expires,
		Failed:    r.Failed,
	})
}

// UnmarshalJSON reads what MarshalJSON writes. The lifetime becomes the
// code whose duration is nearest (two codes differ by 9 %).
func (r *Registration) UnmarshalJSON(b []byte) error {
	var j registrationJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	granted, err := parseRegTypes(j.Granted)
	if err != nil {
		return err
	}
	*r = Registration{Peer: j.Peer, Granted: granted, Lifetime: lifetimeCode(j.LifetimeS), Expires: j.Expires, Failed: j.Failed}
	return nil
}

type registrationFailureJSON struct {
	FailureType uint8    `json:"failure_type"`
	Reason      string   `json:"reason"`
	Types       []string `json:"types"`
}

// MarshalJSON writes f with its reason in words and its types by name.
func (f RegistrationFailure) MarshalJSON() ([]byte, error) {
	return json.Marshal(registrationFailureJSON{
		FailureType: f.FailureType,
		Reason:      wire.RegFailureName(f.FailureType),
		Types:       regTypeNames(f.Types),
	})
}

// UnmarshalJSON reads what MarshalJSON writes; "reason" is ignored.
func (f *RegistrationFailure) UnmarshalJSON(b []byte) error {
	var j registrationFailureJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	types, err := parseRegTypes(j.Types)
	if err != nil {
		return err
	}
	*f = RegistrationFailure{FailureType: j.FailureType, Types: types}
	return nil
}

// regTypeNames names registration types (wire.RegTypeName: "RELAY_UDP_HIP",
// or "regtype42" for one without a name); nil stays nil.
func regTypeNames(ts []uint8) []string {
	if ts == nil {
		return nil
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = wire.RegTypeName(t)
	}
	return names
}

// parseRegTypes reverses regTypeNames.
func parseRegTypes(names []string) ([]uint8, error) {
	if names == nil {
		return nil, nil
	}
	ts := make([]uint8, len(names))
next:
	for i, n := range names {
		for t := range 256 {
			if wire.RegTypeName(uint8(t)) == n {
				ts[i] = uint8(t)
				continue next
			}
		}
		return nil, fmt.Errorf("hipnet: unknown registration type %q", n)
	}
	return ts, nil
}

// lifetimeCode returns the RFC 8003 lifetime code whose duration is
// nearest to sec seconds.
func lifetimeCode(sec float64) uint8 {
	d := time.Duration(math.Round(sec * float64(time.Second)))
	best := uint8(0)
	for c := range 256 {
		if (wire.LifetimeToDuration(uint8(c)) - d).Abs() < (wire.LifetimeToDuration(best) - d).Abs() {
			best = uint8(c)
		}
	}
	return best
}

// locatorJSON is LocatorInfo's JSON: RTT in milliseconds.
type locatorJSON struct {
	Addr         netip.AddrPort `json:"addr"`
	State        string         `json:"state"`
	Origin       string         `json:"origin"`
	Current      bool           `json:"current"`
	Preferred    bool           `json:"preferred"`
	RTTms        float64        `json:"rtt_ms"`
	LastReceived time.Time      `json:"last_received,omitzero"`
}

// MarshalJSON writes l with its RTT in milliseconds ("rtt_ms", to the
// nanosecond).
func (l LocatorInfo) MarshalJSON() ([]byte, error) {
	return json.Marshal(locatorJSON{
		Addr: l.Addr, State: l.State, Origin: l.Origin, Current: l.Current, Preferred: l.Preferred,
		RTTms: float64(l.RTT) / float64(time.Millisecond), LastReceived: l.LastReceived,
	})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (l *LocatorInfo) UnmarshalJSON(b []byte) error {
	var j locatorJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*l = LocatorInfo{
		Addr: j.Addr, State: j.State, Origin: j.Origin, Current: j.Current, Preferred: j.Preferred,
		RTT: time.Duration(math.Round(j.RTTms * float64(time.Millisecond))), LastReceived: j.LastReceived,
	}
	return nil
}

// Stats are a node's counters since it started, and a few gauges, read
// with Node.Stats (and in Status.Stats). Every datagram that reaches the
// node's UDP socket is counted in PacketsIn and then either handled or
// counted in exactly one Drops field. StatusHandler and WriteMetrics serve
// them in the Prometheus text format.
type Stats struct {
	PacketsIn     uint64     `json:"packets_in"`     // UDP datagrams received
	PacketsOut    uint64     `json:"packets_out"`    // UDP datagrams sent
	BytesIn       uint64     `json:"bytes_in"`       // their UDP payload octets
	BytesOut      uint64     `json:"bytes_out"`      // their UDP payload octets
	ControlIn     uint64     `json:"control_in"`     // HIP control packets received (well formed)
	ControlOut    uint64     `json:"control_out"`    // HIP control packets sent
	ESPIn         uint64     `json:"esp_in"`         // ESP packets authenticated
	ESPOut        uint64     `json:"esp_out"`        // ESP packets sent
	Delivered     uint64     `json:"delivered"`      // inner datagrams handed to a connection
	STUNAnswered  uint64     `json:"stun_answered"`  // STUN Binding Requests answered (Config.STUNServer)
	STUNMatched   uint64     `json:"stun_matched"`   // STUN Binding responses matched to the node's own requests
	ICEChecks     uint64     `json:"ice_checks"`     // ICE connectivity checks and answers received
	KeepalivesIn  uint64     `json:"keepalives_in"`  // NAT keepalives received: ESP dummy packets (authenticated), STUN Binding Indications
	KeepalivesOut uint64     `json:"keepalives_out"` // NAT keepalives sent (ESP dummy packets) on idle direct paths
	Drops         Drops      `json:"drops"`
	BEX           BEXStats   `json:"bex"`
	Relay         RelayStats `json:"relay"` // on a relay (cmd/hip-relay): its forwarding and refusals
	Paths         PathStats  `json:"paths"` // mobility and failover: locators, ICE pairs and relays
	IO            IOStats    `json:"io"`    // how the socket moves datagrams

	// Gauges, read when Stats is called.
	Associations     map[string]int `json:"associations"`      // associations by PeerInfo.State ("ESTABLISHED", "I1-SENT", ...)
	RelaysRegistered int            `json:"relays_registered"` // Config.Relays that hold the node's registration now
	Registrations    int            `json:"registrations"`     // on a relay: hosts registered with it now
}

// IOStats say which batching features of the kernel the node's socket
// uses (Stats.IO), detected at start.
type IOStats struct {
	Batch     bool   `json:"batch"`      // sendmmsg and recvmmsg
	GSO       bool   `json:"gso"`        // UDP segmentation offload on send (Linux 4.18)
	GRO       bool   `json:"gro"`        // UDP receive offload (Linux 5.0)
	GSOErrors uint64 `json:"gso_errors"` // GSO sends the kernel refused (then sent without it)

	// How sealed packets left: written at once by their writer (a lone
	// request or reply), or queued and written by the node's sender in
	// Batches (bursts, and every packet of a bulk transfer).
	SentInline uint64 `json:"sent_inline"`
	SentQueued uint64 `json:"sent_queued"`
	Batches    uint64 `json:"batches"`
}

// PathStats count what mobility and failover did (Stats.Paths).
type PathStats struct {
	Switches uint64 `json:"switches"` // an association's traffic moved to another locator (logged as "path switch", or "path" for a relayed association)
	// LostInSwitch counts the datagrams sent into a path that had died,
	// between its last sign of life and the switch away from it: what a
	// failover may have lost. Stream data is retransmitted; datagrams are
	// not.
	LostInSwitch   uint64 `json:"lost_in_switch"`
	ProbesSent     uint64 `json:"probes_sent"`     // address checks sent: UPDATE with ECHO_REQUEST_SIGNED (RFC 8046 §5.4)
	ProbesAnswered uint64 `json:"probes_answered"` // their signed answers
	ProbesRefused  uint64 `json:"probes_refused"`  // checks not sent to an unverified address over its credit (RFC 8046 §5.6)
	EchoAnswered   uint64 `json:"echo_answered"`   // the peers' checks this node answered
	Announcements  uint64 `json:"announcements"`   // UPDATEs announcing this node's addresses (RFC 8046 §5.2)
	Resent         uint64 `json:"resent"`          // packets sent during a failed path check, sent again on the new path
	IdleClosed     uint64 `json:"idle_closed"`     // associations closed after Config.IdleTimeout without data
}

// BEXStats count base exchanges (Stats.BEX).
type BEXStats struct {
	Started   uint64 `json:"started"`   // as Initiator (I1 sent) or Responder (an I2 accepted)
	Completed uint64 `json:"completed"` // reached ESTABLISHED (or R2-SENT, the Responder's end)

	// Failed base exchanges, by reason.
	FailedTimeout uint64 `json:"failed_timeout"` // the peer did not answer (retransmissions exhausted)
	FailedRefused uint64 `json:"failed_refused"` // the peer refused (an authenticated NOTIFY), or Config.Authorize refused the peer
	FailedOther   uint64 `json:"failed_other"`   // anything else: bad signature, no common suite, ...

	// PuzzleDifficulty is the puzzle difficulty #K (RFC 7401 §4.1.2) the
	// node's R1s ask for now: it rises while I2s arrive faster than the
	// node wants to verify them, and falls back after.
	PuzzleDifficulty uint8 `json:"puzzle_difficulty"`
}

// Drops count the datagrams and writes a node dropped, by reason
// (Stats.Drops).
type Drops struct {
	Short           uint64 `json:"short"`            // shorter than 8 octets: neither HIP, ESP nor STUN
	STUN            uint64 `json:"stun"`             // STUN neither answered nor matched: indications, other methods, unmatched responses, requests while Config.STUNServer is off, bad FINGERPRINT, malformed
	Malformed       uint64 `json:"malformed"`        // control packet that does not parse (or has a non-zero checksum); malformed ESP or inner UDP
	UnknownSPI      uint64 `json:"unknown_spi"`      // ESP for no inbound security association
	Replay          uint64 `json:"replay"`           // ESP replayed, or left of the anti-replay window
	AuthFailure     uint64 `json:"auth_failure"`     // ESP whose integrity check value did not verify
	NotForUs        uint64 `json:"not_for_us"`       // HIP packet for another receiver HIT
	Unauthorized    uint64 `json:"unauthorized"`     // from a peer Config.Authorize refused
	ControlRejected uint64 `json:"control_rejected"` // HIP packet the state machine refused (unexpected, bad MAC or signature, ...)
	ControlReplay   uint64 `json:"control_replay"`   // HIP packet refused as a replay: a spent I2 solution, an old UPDATE SEQ, a stale R1
	RateLimited     uint64 `json:"rate_limited"`     // I1 not answered (over the R1 rate of its source, its address or the node), or NOTIFY not checked (over the NOTIFY rate)
	ControlBacklog  uint64 `json:"control_backlog"`  // control packet dropped because the node's handshake processing was behind
	NotUDP          uint64 `json:"not_udp"`          // ESP payload that is not inner UDP (e.g. dummy packets, RFC 4303 §2.6)
	NoListener      uint64 `json:"no_listener"`      // inner UDP to a port nothing listens on
	InboxFull       uint64 `json:"inbox_full"`       // a connection's receive queue was full (its reader too slow)
	QueueFull       uint64 `json:"queue_full"`       // write refused: too much data already waiting for a base exchange
	QueueDiscarded  uint64 `json:"queue_discarded"`  // writes that waited for a base exchange, discarded when it failed
	SendErrors      uint64 `json:"send_errors"`      // UDP socket write errors
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
	ControlForwarded uint64 `json:"control_forwarded"` // HIP control packets relayed, either direction
	ESPForwarded     uint64 `json:"esp_forwarded"`     // ESP packets forwarded by SPI
	Rendezvoused     uint64 `json:"rendezvoused"`      // I1s forwarded to RENDEZVOUS hosts with FROM (RFC 8004)
	Forwards         uint64 `json:"forwards"`          // gauge: ESP forwarding entries now

	// Packets refused, by reason.
	Unregistered uint64 `json:"unregistered"` // to or for a HIT without a relay registration
	Forged       uint64 `json:"forged"`       // RELAY_TO whose RELAY_HMAC did not verify, or relay parameters from outside
	RateLimited  uint64 `json:"rate_limited"` // I1s over a registered host's rate
	TableFull    uint64 `json:"table_full"`   // ESP forwarding entries refused: table full
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
