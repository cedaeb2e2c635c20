package netns

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rebind makes site i's NAT forget its UDP mappings and map every private
// UDP socket that had one to a new public port, as a NAT reboot or a
// carrier-grade NAT's rebinding does; the far end then sees the same
// flow come from a new source port (the address stays the router's).
//
// FlushConntrack alone does not guarantee that for an EndpointIndependent
// site: after the flush the next datagram of a flow creates a new mapping,
// and plain MASQUERADE keeps the private source port when it is free, which
// it now is, so the flow usually comes back on the very same public port
// (RandomFully picks a new random port, the same one with probability
// 1/64512).
//
// So Rebind first lists the router's UDP mappings (conntrack -L) and adds a
// NAT rule, ahead of the site's MASQUERADE rule, for each:
//
//   - EndpointIndependent: one rule per private address and port, which
//     masquerades it to one new port (--to-ports P, P random, not the old
//     port and not one in use), towards every destination, also new ones:
//     the site stays endpoint-independent, with a new port.
//   - RandomFully: one rule per flow (private and remote address and port)
//     that keeps --random-fully but only with ports from the half of
//     1024-65535 that does not hold the old port.
//
// Then it flushes the router's conntrack table, so every flow gets a new
// mapping on its next datagram. A later Rebind replaces the rules it added
// for the same socket or flow; they go with the topology. Datagrams that
// the far end still sends to an old mapping are dropped, silently, as
// unsolicited ones are. Only UDP is rebound; other mappings are forgotten
// and made anew as after FlushConntrack. It needs the conntrack tool (the
// error wraps exec.ErrNotFound without it) and a site with a NAT.
func (tp *Topology) Rebind(i int) error {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if i < 0 || i >= len(tp.sites) {
		return fmt.Errorf("netns: Rebind(%d): no such site", i)
	}
	s := &tp.sites[i]
	if s.spec.NAT == None {
		return fmt.Errorf("netns: Rebind(%d): site %d has no NAT", i, i)
	}
	if _, err := exec.LookPath("conntrack"); err != nil {
		return fmt.Errorf("netns: Rebind needs the conntrack tool (Debian package conntrack): %w", err)
	}
	// A datagram of a running flow can race the flush and come back on its
	// old port; so check, and do it again (the old ports accumulate) until
	// no flow of this NAT is on a port it had before. On a loaded machine
	// (CI runs the packages' tests side by side) the race is won more
	// often: up to rebindRounds rounds, and an error if a flow is still
	// stale after them, rather than a Rebind that did not rebind.
	hist := map[netip.AddrPort][]uint16{}
	for attempt := 1; ; attempt++ {
		if err := tp.rebindOnce(s, hist); err != nil {
			return err
		}
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
		stale, err := tp.staleMappings(s, hist)
		switch {
		case err != nil || stale == 0:
			return err
		case attempt == rebindRounds:
			return fmt.Errorf("netns: Rebind(%d): %d flows still on an old port after %d rounds", i, stale, attempt)
		}
	}
}

// rebindRounds bounds Rebind's rounds: the waits add up to 1.8 s.
const rebindRounds = 8

// staleMappings counts the flows of site s's NAT still on a public port
// they had before a Rebind (hist).
func (tp *Topology) staleMappings(s *site, hist map[netip.AddrPort][]uint16) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := s.router.Exec(ctx, "conntrack", "-L", "-p", "udp")
	if err != nil {
		return 0, err
	}
	n := 0
	pub := s.router.Addr()
	for _, f := range parseConntrack(string(out)) {
		if f.replyDst.Addr() == pub && f.origSrc.Addr() != pub && slices.Contains(hist[f.origSrc], f.replyDst.Port()) {
			n++
		}
	}
	return n, nil
}

// rebindOnce is one round of Rebind: list the mappings, add their rules,
// flush. hist gathers each private socket's public ports so far.
func (tp *Topology) rebindOnce(s *site, hist map[netip.AddrPort][]uint16) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := s.router.Exec(ctx, "conntrack", "-L", "-p", "udp")
	if err != nil {
		return err
	}
	pub := s.router.Addr()
	flows := parseConntrack(string(out))
	inUse := map[uint16]bool{}
	for _, f := range flows {
		if f.replyDst.Addr() == pub {
			inUse[f.replyDst.Port()] = true
		}
	}
	if s.rebind == nil {
		s.rebind = map[string]string{}
	}
	olds := map[netip.AddrPort][]uint16{} // EndpointIndependent: old public ports by private socket
	for _, f := range flows {
		if f.replyDst.Addr() != pub || f.origSrc.Addr() == pub {
			continue // not a mapping of this NAT
		}
		old := f.replyDst.Port()
		if s.spec.NAT == EndpointIndependent {
			olds[f.origSrc] = append(olds[f.origSrc], old)
			hist[f.origSrc] = append(hist[f.origSrc], old)
			continue
		}
		lo, hi := 1024, 33279
		if old <= 33279 {
			lo, hi = 33280, 65535
		}
		hist[f.origSrc] = append(hist[f.origSrc], old)
		key := f.origSrc.String() + ">" + f.origDst.String()
		s.rebind[key] = fmt.Sprintf("-A POSTROUTING -s %s/32 -d %s/32 -o eth0 -p udp --sport %d --dport %d -j MASQUERADE --to-ports %d-%d --random-fully",
			f.origSrc.Addr(), f.origDst.Addr(), f.origSrc.Port(), f.origDst.Port(), lo, hi)
	}
	for src, ports := range olds {
		p := newPort(inUse, append(ports, hist[src]...))
		inUse[p] = true
		s.rebind[src.String()] = fmt.Sprintf("-A POSTROUTING -s %s/32 -o eth0 -p udp --sport %d -j MASQUERADE --to-ports %d",
			src.Addr(), src.Port(), p)
	}
	var rules []string
	for _, k := range slices.Sorted(maps.Keys(s.rebind)) {
		rules = append(rules, s.rebind[k])
	}
	// The nat table alone: iptables-restore replaces the tables it is
	// given and leaves the filter table as it is.
	if err := run(natRules(s.spec.NAT, rules), "ip", "netns", "exec", s.router.name, "iptables-restore"); err != nil {
		return err
	}
	return s.router.FlushConntrack()
}

// newPort returns a random port of 1024-65535 that is neither in use nor
// one of old.
func newPort(inUse map[uint16]bool, old []uint16) uint16 {
	for {
		p := uint16(1024 + rand.IntN(65536-1024))
		if !inUse[p] && !slices.Contains(old, p) {
			return p
		}
	}
}

// ctFlow is one conntrack entry: its original and reply tuples.
type ctFlow struct {
	origSrc, origDst   netip.AddrPort
	replySrc, replyDst netip.AddrPort
}

// parseConntrack reads the UDP entries of `conntrack -L` output, lines such
// as
//
//	udp      17 29 src=10.100.0.2 dst=198.18.0.1 sport=46033 dport=7000 src=198.18.0.1 dst=198.18.0.10 sport=7000 dport=46033 [ASSURED] mark=0 use=1
//
// where the first src, dst, sport and dport are the original direction's and
// the second the reply's; it skips what it cannot read.
func parseConntrack(out string) []ctFlow {
	var flows []ctFlow
	for line := range strings.Lines(out) {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "udp" {
			continue
		}
		var addrs [2][2]netip.Addr // [orig|reply][src|dst]
		var ports [2][2]uint16
		seen := map[string]int{}
		ok := true
		for _, f := range fields {
			k, v, found := strings.Cut(f, "=")
			if !found {
				continue
			}
			var j int // 0 src, 1 dst
			switch k {
			case "src", "sport":
			case "dst", "dport":
				j = 1
			default:
				continue
			}
			dir := seen[k]
			seen[k]++
			if dir > 1 {
				continue
			}
			if k == "src" || k == "dst" {
				a, err := netip.ParseAddr(v)
				ok = ok && err == nil
				addrs[dir][j] = a
			} else {
				p, err := strconv.ParseUint(v, 10, 16)
				ok = ok && err == nil
				ports[dir][j] = uint16(p)
			}
		}
		if !ok || seen["src"] != 2 || seen["dst"] != 2 || seen["sport"] != 2 || seen["dport"] != 2 {
			continue
		}
		flows = append(flows, ctFlow{
			origSrc:  netip.AddrPortFrom(addrs[0][0], ports[0][0]),
			origDst:  netip.AddrPortFrom(addrs[0][1], ports[0][1]),
			replySrc: netip.AddrPortFrom(addrs[1][0], ports[1][0]),
			replyDst: netip.AddrPortFrom(addrs[1][1], ports[1][1]),
		})
	}
	return flows
}
