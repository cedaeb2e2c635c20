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
	"strings"
	"text/tabwriter"
	"time"

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
	asJSON := fs.Bool("json", false, "print the status as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hip status [-url URL] [-json]\n\nPrints a running node's HIT, address, relays, registrations and\nassociations, as served by hipnet.StatusHandler (hip-relay -status).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
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
	printStatus(stdout, st, time.Now())
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

func printStatus(w io.Writer, st hipnet.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "HIT\t%v\n", st.HIT)
	fmt.Fprintf(tw, "listen\t%v\n", st.LocalAddr)
	for _, r := range st.Relays {
		state := "not registered"
		if r.Registered {
			state = "registered"
		}
		fmt.Fprintf(tw, "relay\t%v@%v\t%s\treflexive %v\n", r.HIT, r.Addr, state, r.Reflexive)
	}
	fmt.Fprintf(tw, "registrations\t%d\n", len(st.Registrations))
	s := st.Stats
	fmt.Fprintf(tw, "traffic\tin %d pkts %d B, out %d pkts %d B, drops %d\n", s.PacketsIn, s.BytesIn, s.PacketsOut, s.BytesOut, s.Drops.Total())
	fmt.Fprintf(tw, "base exchanges\t%d started, %d completed, %d failed\n", s.BEX.Started, s.BEX.Completed,
		s.BEX.FailedTimeout+s.BEX.FailedRefused+s.BEX.FailedOther)
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tSTATE\tPATH\tLOCATOR\tSUITES\tIN\tOUT\tAGE")
	for _, p := range st.Peers {
		suites := "-"
		if p.ESPSuite != "" {
			suites = p.HITSuite + ", " + p.DHGroup + ", " + p.ESPSuite
		}
		fmt.Fprintf(tw, "%v\t%s\t%s\t%v\t%s\t%d\t%d\t%v\n", p.HIT, p.State, p.Path, p.Locator, suites,
			p.BytesIn, p.BytesOut, now.Sub(p.Since).Truncate(time.Second))
		for _, l := range p.Locators {
			fmt.Fprintf(tw, "\t\t\t%v\t%s\n", l.Addr, locatorLine(l))
		}
	}
	tw.Flush()
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
