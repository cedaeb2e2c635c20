// Command hip-relay is a HIP relay: hosts behind NATs register with it
// (RFC 8003) and are reached through it by their HITs alone (the control
// relay of RFC 5770, the rendezvous of RFC 8004), with a STUN binding
// service on its HIP port and, optionally, a TURN service whose
// credentials only registered hosts obtain.
//
//	hip-relay -listen :10500 -identity relay.key [-turn :3478 -turn-ip ADDR] [-allow FILE] [-status 127.0.0.1:10580] [-v]
//
// It prints "HIT <hit>" once it is listening, logs to standard error and
// runs until SIGINT or SIGTERM, when it sends CLOSE to its hosts and exits.
// The allow file lists the HITs that may register, one per line ('#'
// starts a comment); without it any authenticated host may.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/hipnet"
	"hipnet.dev/internal/cliflags"
	"hipnet.dev/relay"
)

func main() {
	cliflags.Main("hip-relay", run)
}

const usage = `usage: hip-relay [-listen addr] [-identity file] [-turn addr -turn-ip addr] [-allow file] [-status addr] [-v]

A HIP relay: hosts behind NATs register with it (RFC 8003) and are reached
through it by their HITs (RFC 5770 control relay, RFC 8004 rendezvous),
with a STUN service on its HIP port and optionally TURN for registered
hosts. It prints "HIT <hit>" once listening and runs until SIGINT or
SIGTERM.

flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cliflags.NewFlagSet("hip-relay", usage, stderr)
	listen := fs.String("listen", ":10500", "UDP address for HIP, ESP and STUN")
	idPath := fs.String("identity", "relay.key", "host identity file (PEM; created, mode 0600, if missing)")
	turnAddr := fs.String("turn", "", "UDP address of the TURN service (empty: no TURN)")
	turnIP := fs.String("turn-ip", "", "public address to put in TURN relayed addresses (required with -turn unless -turn names an address)")
	allowPath := fs.String("allow", "", "file of HITs allowed to register (default: any authenticated host)")
	maxRegs := fs.Int("max-registrations", 0, "registered hosts at most (0: 100000)")
	statusAddr := fs.String("status", "", "serve status (JSON, /status) and Prometheus metrics (/metrics) on this TCP `address`, e.g. 127.0.0.1:10580, or unix:/path (off by default)")
	verbose := fs.Bool("v", false, "debug logs")
	if err := cliflags.Parse(fs, args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := checkFlags(*listen, *idPath, *turnAddr); err != nil {
		return cliflags.Refuse(stderr, "hip-relay", err)
	}
	id, created, err := hostid.LoadOrCreate(*idPath, hostid.ECDSAP256, nil)
	if err != nil {
		return fmt.Errorf("-identity: %w", err)
	}
	if created {
		// A new key is a new HIT: hosts that know the relay by its old
		// one no longer reach it.
		log.Warn("created a new identity: the relay has a new HIT", "file", *idPath)
	}
	cfg := relay.Config{Identity: id, ListenAddr: *listen, Logger: log, MaxRegistrations: *maxRegs}
	if *allowPath != "" {
		allowed, err := readAllow(*allowPath)
		if err != nil {
			return err
		}
		cfg.Allow = func(h wire.HIT) bool { _, ok := allowed[h]; return ok }
		log.Info("allow-list", "file", *allowPath, "hosts", len(allowed))
	}
	if *turnAddr != "" {
		ip, err := turnRelayIP(*turnAddr, *turnIP)
		if err != nil {
			return cliflags.Refuse(stderr, "hip-relay", err)
		}
		cfg.TURN = &relay.TURNConfig{ListenAddr: *turnAddr, RelayIP: ip}
	}
	srv, err := relay.New(cfg)
	if err != nil {
		return err
	}
	if *statusAddr != "" {
		stopStatus, err := serveStatus(*statusAddr, hipnet.StatusHandler(relayStatus{srv}), log)
		if err != nil {
			srv.Close()
			return err
		}
		defer stopStatus()
	}
	fmt.Fprintf(stdout, "HIT %v\n", srv.HIT())
	log.Info("relay listening", "hit", srv.HIT().String(), "addr", srv.Addr(), "turn", srv.TURNAddr())
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			st := srv.Stats()
			log.Info("relay stopping", "registrations", st.Registrations, "control_forwarded", st.Relay.ControlForwarded, "esp_forwarded", st.Relay.ESPForwarded)
			return srv.Close()
		case <-tick.C:
			st := srv.Stats()
			log.Info("relay stats", "registrations", st.Registrations, "control_forwarded", st.Relay.ControlForwarded,
				"esp_forwarded", st.Relay.ESPForwarded, "drop_unregistered", st.Relay.Unregistered, "drop_forged", st.Relay.Forged,
				"drop_rate", st.Relay.RateLimited, "turn_allocations", st.TURN.Allocations)
		}
	}
}

// relayStatus makes the relay a hipnet.StatusSource. The relay reports its
// stack's status in package overlay's type, whose fields are hipnet.Status's,
// by the same names (hipnet's TestStatusTypesMatchStack holds them alike),
// so copyByName converts it; TestRelayStatusCopiesEveryField checks that
// no field is left behind.
type relayStatus struct{ srv *relay.Server }

func (r relayStatus) Status() hipnet.Status {
	var st hipnet.Status
	copyByName(reflect.ValueOf(&st).Elem(), reflect.ValueOf(r.srv.Status()))
	return st
}

// copyByName copies src into dst: a struct field by field, to the field
// of the same name; a slice or map element by element (nil stays nil);
// anything else by assignment or conversion.
func copyByName(dst, src reflect.Value) {
	switch {
	case src.Type().AssignableTo(dst.Type()):
		dst.Set(src)
	case src.Kind() == reflect.Struct && dst.Kind() == reflect.Struct:
		for i := range src.NumField() {
			if f := src.Type().Field(i); f.IsExported() {
				if d := dst.FieldByName(f.Name); d.IsValid() && d.CanSet() {
					copyByName(d, src.Field(i))
				}
			}
		}
	case src.Kind() == reflect.Slice && dst.Kind() == reflect.Slice:
		if src.IsNil() {
			return
		}
		dst.Set(reflect.MakeSlice(dst.Type(), src.Len(), src.Len()))
		for i := range src.Len() {
			copyByName(dst.Index(i), src.Index(i))
		}
	case src.Kind() == reflect.Map && dst.Kind() == reflect.Map:
		if src.IsNil() {
			return
		}
		dst.Set(reflect.MakeMapWithSize(dst.Type(), src.Len()))
		for it := src.MapRange(); it.Next(); {
			k, v := reflect.New(dst.Type().Key()).Elem(), reflect.New(dst.Type().Elem()).Elem()
			copyByName(k, it.Key())
			copyByName(v, it.Value())
			dst.SetMapIndex(k, v)
		}
	case src.Type().ConvertibleTo(dst.Type()):
		dst.Set(src.Convert(dst.Type()))
	}
}

// serveStatus serves h on addr (TCP, or "unix:/path") until stop.
func serveStatus(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	network := "tcp"
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", p
		_ = os.Remove(p)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("status listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// checkFlags refuses, naming the flag, what would otherwise fail later
// with a bare error: an address that does not parse, and an identity file
// in a directory that does not exist. The file itself is created when
// missing, but a path with a typo in its directory would have the relay
// create the directories and start with a new identity, a new HIT its
// hosts do not know.
func checkFlags(listen, idPath, turnAddr string) error {
	if _, err := net.ResolveUDPAddr("udp", listen); err != nil {
		return fmt.Errorf("-listen %q: %w", listen, err)
	}
	if _, err := os.Stat(idPath); errors.Is(err, fs.ErrNotExist) {
		if dir := filepath.Dir(idPath); !isDir(dir) {
			return fmt.Errorf("-identity %q: directory %s does not exist (create it, or fix the path)", idPath, dir)
		}
	}
	if turnAddr != "" {
		if _, err := net.ResolveUDPAddr("udp", turnAddr); err != nil {
			return fmt.Errorf("-turn %q: %w", turnAddr, err)
		}
	}
	return nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// turnRelayIP picks the address for XOR-RELAYED-ADDRESS.
func turnRelayIP(listen, flagIP string) (netip.Addr, error) {
	if flagIP != "" {
		ip, err := netip.ParseAddr(flagIP)
		if err != nil {
			return ip, fmt.Errorf("-turn-ip %q: not an IP address", flagIP)
		}
		return ip, nil
	}
	if ap, err := netip.ParseAddrPort(listen); err == nil && !ap.Addr().IsUnspecified() {
		return ap.Addr(), nil
	}
	return netip.Addr{}, errors.New("-turn needs -turn-ip (the relay's public address) when it listens on all addresses")
}

// readAllow reads an allow-list file: one HIT per line, '#' comments.
func readAllow(path string) (map[wire.HIT]struct{}, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[wire.HIT]struct{}{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		h, err := wire.ParseHIT(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out[h] = struct{}{}
	}
	return out, sc.Err()
}
