package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/hipnet"
)

// DefaultStatusURL is where `hip status` looks when -url is not given:
// the address `hip-relay -status` and applications mounting
// hipnet.StatusHandler are advised to use.
const DefaultStatusURL = "http://127.0.0.1:10580/status"

// status runs `hip status`: it reads a node's status from its
// hipnet.StatusHandler and prints it.
func status(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hip status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", DefaultStatusURL, "the node's status `URL` (http://host:port/path, or unix:/path/to/socket)")
	asJSON := fs.Bool("json", false, "print the status as JSON (hipnet.Status: snake_case keys, a stable format)")
	all := fs.Bool("a", false, "list every association, also the CLOSED and UNASSOCIATED ones (marked \"inactive\")")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: hip status [-url URL] [-a] [-json]\n\nPrints a running node's HIT, address, relays, the hosts registered with it\n(on a relay) and its associations, as served by hipnet.StatusHandler\n(hip-relay -status).")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Errorf("status: unexpected argument %q", fs.Arg(0))}
	}
	st, raw, err := fetchStatus(*url)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := stdout.Write(raw)
		return err
	}
	printStatus(stdout, st, time.Now(), *all)
	return nil
}

func fetchStatus(url string) (hipnet.Status, []byte, error) {
	var st hipnet.Status
	client := &http.Client{Timeout: 5 * time.Second}
	if path, ok := strings.CutPrefix(url, "unix:"); ok {
		client.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}
		url = "http://unix/status"
	}
	resp, err := client.Get(url)
	if err != nil {
		return st, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, nil, fmt.Errorf("status: %s: %s", url, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return st, nil, err
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, nil, errors.New("status: " + url + " did not answer with a hipnet status: " + err.Error())
	}
	return st, raw, nil
}

// inactive reports whether an association in state is over or not begun
// (RFC 7401 §4.4.2): `hip status` hides it unless -a.
func inactive(state string) bool { return state == "CLOSED" || state == "UNASSOCIATED" }

func printStatus(w io.Writer, st hipnet.Status, now time.Time, all bool) {
	relays := map[hipnet.HIT]bool{}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "HIT\t%v\n", st.HIT)
	fmt.Fprintf(tw, "listen\t%s\n", addrText(st.LocalAddr))
	for _, r := range st.Relays {
		state := "not registered"
		if r.Registered {
			state = "registered"
		}
		name := addrText(r.Addr) + " (HIT not learnt yet)"
		if !r.HIT.IsZero() {
			name = r.HIT.String() + "@" + addrText(r.Addr)
			relays[r.HIT] = true
		}
		fmt.Fprintf(tw, "relay\t%s\t%s\treflexive %s\n", name, state, addrText(r.Reflexive))
	}
	s := st.Stats
	fmt.Fprintf(tw, "udp\tin %d pkts %s, out %d pkts %s, drops %d\n",
		s.PacketsIn, sizeText(s.BytesIn), s.PacketsOut, sizeText(s.BytesOut), s.Drops.Total())
	fmt.Fprintf(tw, "base exchanges\t%d started, %d completed, %d failed\n", s.BEX.Started, s.BEX.Completed,
		s.BEX.FailedTimeout+s.BEX.FailedRefused+s.BEX.FailedOther)
	if r := s.Relay; r != (hipnet.RelayStats{}) || len(st.Registrations) > 0 {
		fmt.Fprintf(tw, "relayed\tcontrol %d, esp %d, rendezvous %d; refused %d\n", r.ControlForwarded, r.ESPForwarded,
			r.Rendezvoused, r.Unregistered+r.Forged+r.RateLimited+r.TableFull)
	}
	fmt.Fprintf(tw, "registered here\t%s\n", plural(len(st.Registrations), "host"))
	tw.Flush()

	hosts := map[hipnet.HIT]bool{}
	if len(st.Registrations) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "REGISTERED HOST\tTYPES\tLIFETIME\tEXPIRES\tREFUSED")
		for _, g := range st.Registrations {
			hosts[g.Peer] = true
			var refused []string
			for _, f := range g.Failed {
				refused = append(refused, regTypesText(f.Types)+" ("+wire.RegFailureName(f.FailureType)+")")
			}
			if refused == nil {
				refused = []string{"-"}
			}
			fmt.Fprintf(tw, "%v\t%s\t%v\t%s\t%s\n", g.Peer, regTypesText(g.Granted), g.Duration().Round(time.Second),
				expiresText(now, g.Expires), strings.Join(refused, "; "))
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tSTATE\tAGE\tPATH\tLOCATOR\tRX\tTX\tLAST HANDSHAKE\tLAST SEEN\tSUITES")
	hidden := map[string]int{}
	controlOnly := false
	for _, p := range st.Peers {
		state := p.State
		if inactive(p.State) {
			if !all {
				hidden[p.State]++
				continue
			}
			state += " (inactive)"
		}
		peer := p.HIT.String()
		switch {
		case relays[p.HIT]:
			peer += " (relay)"
		case hosts[p.HIT]:
			peer += " (registered)"
		}
		if (relays[p.HIT] || hosts[p.HIT]) && p.PacketsIn+p.PacketsOut == 0 {
			controlOnly = true
		}
		path, suites := p.Path, "-"
		if path == "" {
			path = "-"
		}
		if p.ESPSuite != "" {
			suites = p.HITSuite + ", " + p.DHGroup + ", " + p.ESPSuite
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", peer, state, age(now, p.Since), path,
			addrText(p.Locator), sizeText(p.BytesIn), sizeText(p.BytesOut), ago(now, p.LastHandshake), ago(now, p.LastSeen), suites)
		for _, l := range p.Locators {
			fmt.Fprintf(tw, "\t\t\t\t%s\t\t\t\t\t%s\n", addrText(l.Addr), locatorLine(l))
		}
	}
	tw.Flush()
	if controlOnly {
		fmt.Fprintln(w, "(RX, TX and LAST SEEN count an association's own data (ESP); one with a relay carries HIP\n control only, and what a relay forwards for its hosts is under \"relayed\".)")
	}
	if n := hidden["CLOSED"] + hidden["UNASSOCIATED"]; n > 0 {
		fmt.Fprintf(w, "(%d inactive: %d CLOSED, %d UNASSOCIATED, not listed; -a lists them)\n", n, hidden["CLOSED"], hidden["UNASSOCIATED"])
	}
}

// locatorLine describes one of a peer's locators under its association:
// its state, where it came from, and whether traffic goes there.
func locatorLine(l hipnet.LocatorInfo) string {
	s := l.State + ", " + l.Origin
	if l.Preferred {
		s += ", preferred"
	}
	if l.RTT > 0 {
		s += ", rtt " + l.RTT.Round(100*time.Microsecond).String()
	}
	if l.Current {
		s = "* " + s
	}
	return s
}

// addrText prints a, or "-" for the zero AddrPort (no address), which
// netip prints as "invalid AddrPort".
func addrText(a netip.AddrPort) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}

// ago prints how long before now t was, to the second ("12s ago"), as
// `wg show` prints its latest handshake; "-" for the zero time (never).
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return age(now, t) + " ago"
}

// age prints now - t to the second ("1h2m3s"); "-" for the zero time.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return max(now.Sub(t), 0).Truncate(time.Second).String()
}

// expiresText prints when a registration expires: "in 1m57s", or
// "expired 3s ago" (not yet renewed, or about to be removed).
func expiresText(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if d := t.Sub(now); d >= 0 {
		return "in " + d.Truncate(time.Second).String()
	}
	return "expired " + ago(now, t)
}

// regTypesText names registration types ("RELAY_UDP_HIP,RELAY_UDP_ESP");
// "-" for none.
func regTypesText(ts []uint8) string {
	if len(ts) == 0 {
		return "-"
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = wire.RegTypeName(t)
	}
	return strings.Join(names, ",")
}

// plural prints n and the noun, with an "s" unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// sizeText prints an octet count in binary units: "512 B", "1.5 KiB".
func sizeText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
