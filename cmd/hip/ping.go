package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"time"

	"hipnet.dev/hipnet"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

type pingReply struct {
	Seq  uint64  `json:"seq"`
	RTT  float64 `json:"rtt_ms"`
	Path string  `json:"path"`
}

// pingResult is what `hip ping` found, and its -json output.
type pingResult struct {
	Peer hipnet.HIT `json:"peer"`
	BEX  float64    `json:"bex_ms"` // the base exchange and a first echo; 0 when they failed

	// Sent counts echo requests, Received their replies. An association
	// that could not be set up counts as one request sent, and as one of
	// Errors, as ping(8) counts a packet that met an ICMP error.
	Sent     int         `json:"sent"`
	Received int         `json:"received"`
	Errors   int         `json:"errors"`
	Loss     float64     `json:"loss_pct"` // 100 * (Sent - Received) / Sent; 0 when nothing was sent
	Time     float64     `json:"time_ms"`  // from the first request to the end
	Replies  []pingReply `json:"replies"`
	Min      float64     `json:"min_ms"`
	Avg      float64     `json:"avg_ms"`
	Max      float64     `json:"max_ms"`
	Mdev     float64     `json:"mdev_ms"`
	Error    string      `json:"error,omitempty"` // why the base exchange failed
}

// ping runs `hip ping`: a base exchange with the peer (timed), then echo
// requests over the association (overlay.EchoPort), like ping(8).
func ping(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hip ping", flag.ContinueOnError)
	fs.SetOutput(stderr)
	idPath := fs.String("identity", "", "identity `file` (default: a new one for this run)")
	listen := fs.String("listen", ":0", "UDP `address` of this node")
	var relays, peers stringList
	fs.Var(&relays, "relay", "relay `HIT@host:port` or host:port (repeatable)")
	fs.Var(&peers, "peer", "a locator for the peer, `HIT@host:port` (repeatable)")
	count := fs.Int("c", 5, "stop after `n` replies (0: until interrupted)")
	interval := fs.Duration("i", time.Second, "wait `d` between requests")
	size := fs.Int("s", 56, "payload `size` in octets (at least 16)")
	wait := fs.Duration("W", 2*time.Second, "wait at most `d` for each reply (and for a new base exchange, if the association has gone)")
	deadline := fs.Duration("w", 30*time.Second, "give up the base exchange after `d`")
	asJSON := fs.Bool("json", false, "print one JSON object at the end instead")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hip ping [flags] HIT\n\nRuns a base exchange with HIT (through -relay when no -peer locator is\ngiven), then sends echo requests over the association.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("ping: one HIT expected")}
	}
	peer, err := hipnet.ParseHIT(fs.Arg(0))
	if err != nil {
		return usageError{err}
	}
	var id *hipnet.Identity
	if *idPath != "" {
		id, err = hipnet.LoadOrCreateIdentity(*idPath)
	} else {
		id, err = hipnet.GenerateIdentity()
	}
	if err != nil {
		return err
	}
	locs, err := hipnet.ParsePeers(strings.Join(peers, ","))
	if err != nil {
		return usageError{err}
	}
	node, err := hipnet.NewNode(hipnet.Config{Identity: id, ListenAddr: *listen, Peers: locs, Relays: relays})
	if err != nil {
		return err
	}
	defer node.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res := pingResult{Peer: peer}
	if !*asJSON {
		fmt.Fprintf(stdout, "PING %v from %v, %d octets\n", peer, node.HIT(), max(*size, 16))
	}
	bctx, cancel := context.WithTimeout(ctx, *deadline)
	started := time.Now()
	_, err = node.Ping(bctx, peer, 0, 16, *wait) // the base exchange, then one echo to be sure
	cancel()
	if err != nil {
		// As ping(8) does when its first packet meets an error: the
		// request counts as sent and lost, and the statistics follow.
		res.Sent, res.Error = 1, err.Error()
		if ctx.Err() == nil {
			res.Errors = 1
		}
		if !*asJSON {
			fmt.Fprintf(stdout, "no association: %v\n", err)
		}
		if perr := printPing(stdout, &res, time.Since(started), *asJSON); perr != nil {
			return perr
		}
		return fmt.Errorf("ping %v: %w", peer, err)
	}
	res.BEX = ms(time.Since(started))
	if !*asJSON {
		p := peerOf(node, peer)
		fmt.Fprintf(stdout, "association: %.3f ms (base exchange and a first echo), path %s, locator %s, %s\n",
			res.BEX, p.Path, addrText(p.Locator), p.ESPSuite)
	}
	started = time.Now()
	for seq := uint64(1); *count == 0 || res.Received < *count; seq++ {
		if seq > 1 {
			select {
			case <-ctx.Done():
			case <-time.After(*interval):
			}
		}
		if ctx.Err() != nil {
			break
		}
		res.Sent++
		// -W bounds the whole request, a new base exchange included
		// if the association has gone (the peer closed it).
		rctx, cancel := context.WithTimeout(ctx, *wait)
		rtt, err := node.Ping(rctx, peer, seq, *size, *wait)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				res.Sent--
				break
			}
			if !*asJSON {
				fmt.Fprintf(stdout, "no reply: seq=%d (%v)\n", seq, err)
			}
			if *count != 0 && res.Sent >= 2**count {
				break
			}
			continue
		}
		res.Received++
		r := pingReply{Seq: seq, RTT: ms(rtt), Path: peerOf(node, peer).Path}
		res.Replies = append(res.Replies, r)
		if !*asJSON {
			fmt.Fprintf(stdout, "%d octets from %v: seq=%d time=%.3f ms path=%s\n", max(*size, 16), peer, seq, r.RTT, r.Path)
		}
	}
	if err := printPing(stdout, &res, time.Since(started), *asJSON); err != nil {
		return err
	}
	if res.Received == 0 {
		return errors.New("no replies")
	}
	return nil
}

// printPing completes res with its statistics and prints them as ping(8)
// does ("--- HIT ping statistics ---", then sent, received, errors, loss
// and time, then the round trips if any reply came), or res as JSON.
func printPing(w io.Writer, res *pingResult, elapsed time.Duration, asJSON bool) error {
	summarize(res)
	res.Time = ms(elapsed)
	if res.Sent > 0 {
		res.Loss = 100 * float64(res.Sent-res.Received) / float64(res.Sent)
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	errs := ""
	if res.Errors > 0 {
		errs = fmt.Sprintf(", +%d errors", res.Errors)
	}
	fmt.Fprintf(w, "--- %v ping statistics ---\n%d sent, %d received%s, %.0f%% loss, time %dms\n",
		res.Peer, res.Sent, res.Received, errs, res.Loss, elapsed.Milliseconds())
	if res.Received > 0 {
		fmt.Fprintf(w, "rtt min/avg/max/mdev = %.3f/%.3f/%.3f/%.3f ms\n", res.Min, res.Avg, res.Max, res.Mdev)
	}
	return nil
}

func summarize(r *pingResult) {
	if len(r.Replies) == 0 {
		return
	}
	r.Min = math.Inf(1)
	var sum, sq float64
	for _, x := range r.Replies {
		r.Min, r.Max = min(r.Min, x.RTT), max(r.Max, x.RTT)
		sum += x.RTT
		sq += x.RTT * x.RTT
	}
	n := float64(len(r.Replies))
	r.Avg = sum / n
	r.Mdev = math.Sqrt(max(0, sq/n-r.Avg*r.Avg))
}

func peerOf(n *hipnet.Node, h hipnet.HIT) hipnet.PeerInfo {
	for _, p := range n.Peers() {
		if p.HIT == h {
			return p
		}
	}
	return hipnet.PeerInfo{}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
