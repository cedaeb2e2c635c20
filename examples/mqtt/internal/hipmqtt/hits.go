package hipmqtt

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"hipnet.dev/hipnet"
)

// ReadHITs reads an allow-list file: one HIT per line, blank lines and
// '#' comments ignored (the format of hip-relay -allow).
func ReadHITs(path string) (map[hipnet.HIT]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[hipnet.HIT]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		h, err := hipnet.ParseHIT(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out[h] = true
	}
	return out, sc.Err()
}

// ParseRelays splits a comma-separated list of relays, each
// "HIT@host:port", and returns them for hipnet.Config.Relays with their
// HITs. The HIT is required: both programs pass Config.Authorize, which
// also decides about the relay's association, so the relay must be known
// by its HIT beforehand (the opportunistic "host:port" form would be
// refused).
func ParseRelays(list string) (relays []string, hits []hipnet.HIT, err error) {
	for _, r := range strings.Split(list, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		ra, err := hipnet.ParseRelay(r)
		if err != nil {
			return nil, nil, err
		}
		if ra.HIT.IsZero() || !ra.Addr.Addr().IsValid() || ra.Addr.Port() == 0 {
			return nil, nil, fmt.Errorf("relay %q: want HIT@host:port", r)
		}
		relays = append(relays, r)
		hits = append(hits, ra.HIT)
	}
	if len(relays) == 0 {
		return nil, nil, errors.New("no relay given")
	}
	return relays, hits, nil
}

// DeviceTopicPrefix is the topic space of a device: "devices/<HIT>/".
func DeviceTopicPrefix(h hipnet.HIT) string { return "devices/" + h.String() + "/" }

// TelemetryTopic is where the device program publishes:
// "devices/<HIT>/telemetry".
func TelemetryTopic(h hipnet.HIT) string { return DeviceTopicPrefix(h) + "telemetry" }
