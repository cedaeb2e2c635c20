package wire

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite testdata/fuzz seed corpora from the interop captures")

// TestWriteFuzzSeeds regenerates the committed seed corpora:
//
//	go test -run WriteFuzzSeeds ./handshake/wire -args -write-seeds
//
// Without the flag it checks that the committed corpus holds the capture
// packets, so a stale or missing corpus is noticed.
func TestWriteFuzzSeeds(t *testing.T) {
	skipWithoutInterop(t)
	type seed struct {
		target, name string
		args         []string
	}
	var seeds []seed
	lit := func(b []byte) string { return fmt.Sprintf("[]byte(%q)", b) }
	seen := map[[32]byte]bool{}
	count := map[string]int{}
	addParam := func(name string, q Param) {
		h := sha256.Sum256(append([]byte{byte(q.Type() >> 8), byte(q.Type())}, q.Contents()...))
		if seen[h] {
			return
		}
		seen[h] = true
		name = fmt.Sprintf("%s-%s", name, q.Type())
		count[name]++
		seeds = append(seeds, seed{"FuzzParams", fmt.Sprintf("%s-%d", name, count[name]),
			[]string{fmt.Sprintf("uint16(%d)", uint16(q.Type())), lit(q.Contents())}})
	}
	for _, file := range []string{"cutehip-bex-rsa.pcap", "cutehip-bex-rsa-ecdsa.pcap", "cutehip-bex-ecdsa-init.pcap", "openhip-bex-udp.pcap"} {
		base := strings.TrimSuffix(file, ".pcap")
		nESP := 0
		for _, c := range readCapture(t, file) {
			name := fmt.Sprintf("%s-f%03d", base, c.frame)
			if c.udp {
				if !HasNonESPMarker(c.payload) {
					if nESP++; nESP > 1 {
						continue
					}
					seeds = append(seeds, seed{"FuzzParseUDPControl", name + "-esp", []string{lit(c.payload)}})
					continue
				}
				seeds = append(seeds, seed{"FuzzParseUDPControl", name + "-hipv1", []string{lit(c.payload)}})
				seeds = append(seeds, seed{"FuzzParsePacket", name + "-hipv1", []string{lit(c.payload[NonESPMarkerLen:])}})
				continue
			}
			p, err := ParsePacket(c.payload)
			if err != nil {
				t.Fatal(err)
			}
			name += "-" + p.Type().String()
			seeds = append(seeds, seed{"FuzzParsePacket", name, []string{lit(c.payload)}})
			for it := p.Params(); ; {
				q, ok := it.Next()
				if !ok {
					break
				}
				addParam(base, q)
			}
		}
	}
	ck := appendixCI1(t)
	seeds = append(seeds, seed{"FuzzParsePacket", "rfc7401-appendix-c-I1", []string{lit(ck)}})
	// Boundary contents for every decoder: empty and one octet short of the
	// shortest valid length.
	for pt := range decoders {
		seeds = append(seeds, seed{"FuzzParams", "empty-" + pt.String(), []string{fmt.Sprintf("uint16(%d)", uint16(pt)), lit(nil)}})
	}

	if !*writeSeeds {
		for _, s := range seeds {
			if s.target != "FuzzParsePacket" || !strings.HasPrefix(s.name, "cutehip") {
				continue
			}
			if _, err := os.Stat(filepath.Join("testdata", "fuzz", s.target, s.name)); err != nil {
				t.Errorf("seed missing (run with -write-seeds): %v", err)
			}
		}
		return
	}
	for _, target := range []string{"FuzzParsePacket", "FuzzParams", "FuzzParseUDPControl"} {
		if err := os.RemoveAll(filepath.Join("testdata", "fuzz", target)); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range seeds {
		dir := filepath.Join("testdata", "fuzz", s.target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n" + strings.Join(s.args, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(dir, s.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d seeds", len(seeds))
}
