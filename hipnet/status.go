package hipnet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"hipnet.dev/overlay"
)

// Stats are a node's counters and gauges: packets and bytes in and out,
// drops by reason, base exchanges started, completed and failed by reason,
// associations by state, relay registrations. Read them with Node.Stats;
// StatusHandler serves them in the Prometheus text format.
type Stats = overlay.Stats

// Status is a snapshot of a node for operators: its HIT, address, relays,
// registrations, associations (Peers) and Stats. `hip status` prints it.
type Status = overlay.Status

// Stats returns the node's counters and gauges. Nothing leaves the
// process unless the application sends it.
func (n *Node) Stats() Stats { return n.stack.Stats() }

// Status returns a snapshot of the node.
func (n *Node) Status() Status { return n.stack.Status() }

// Ping sends one echo request over the association with peer (starting
// the base exchange if needed) and returns the round-trip time. Every node
// answers pings from its authenticated peers, on a reserved inner port
// (overlay.EchoPort), as IP hosts answer ICMP echo. seq tells replies
// apart; size is the payload size (at least 16 octets). It gives up with
// an error after timeout.
func (n *Node) Ping(ctx context.Context, peer HIT, seq uint64, size int, timeout time.Duration) (time.Duration, error) {
	if err := n.stack.Connect(ctx, peer); err != nil {
		return 0, err
	}
	return n.stack.Ping(ctx, peer, seq, size, timeout)
}

// StatusSource is what StatusHandler reports on: a *Node, or anything else
// with a Status (the relay server has one).
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
		lab("reason", "control_rejected", d.ControlRejected), lab("reason", "control_backlog", d.ControlBacklog),
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
	metric("relay_forwarded_total", "counter", "Packets a relay forwarded, by kind.", lab("kind", "control", r.ControlForwarded), lab("kind", "esp", r.ESPForwarded))
	metric("relay_drops_total", "counter", "Packets a relay refused, by reason.",
		lab("reason", "unregistered", r.Unregistered), lab("reason", "forged", r.Forged),
		lab("reason", "rate_limited", r.RateLimited), lab("reason", "table_full", r.TableFull))
}
