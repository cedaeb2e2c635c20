package pcap

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTsharkReadsWriter: an independent reader must accept what Writer
// produces, for every link type, with valid IPv4 header and IPv6 UDP
// checksums (tshark checksum status: 0 bad, 1 good, 2 unverified, 3 not present).
func TestTsharkReadsWriter(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed")
	}
	for _, lt := range []uint32{LinkTypeEthernet, LinkTypeRaw, LinkTypeLinuxSLL} {
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, lt)
		t0 := time.Unix(1700000000, 0)
		must(t, w.WriteUDP(t0, netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:40001"), []byte("odd payload")))
		must(t, w.WriteUDP(t0, netip.MustParseAddrPort("[2001:db8::1]:40000"), netip.MustParseAddrPort("[2001:db8::2]:40001"), []byte("odd payload")))
		file := filepath.Join(t.TempDir(), "w.pcap")
		must(t, os.WriteFile(file, buf.Bytes(), 0o644))
		out, err := exec.Command(tshark, "-n", "-r", file,
			"-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
			"-T", "fields", "-E", "separator=|",
			"-e", "ip.checksum.status", "-e", "udp.checksum.status", "-e", "udp.length", "-e", "_ws.malformed").Output()
		if err != nil {
			t.Fatalf("link %d: tshark: %v", lt, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		want := []string{"1|3|19|", "|1|19|"} // IPv4: header good, UDP checksum absent (0); IPv6: UDP good
		if len(lines) != 2 || lines[0] != want[0] || lines[1] != want[1] {
			t.Errorf("link %d: tshark fields %q, want %q", lt, lines, want)
		}
	}
}
