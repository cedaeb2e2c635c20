package esp_test

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/internal/pcap"
)

// TestWiresharkDecrypts is the independent-decoder check of DESIGN.md
// "Testing": packets sealed here, written as UDP-encapsulated ESP on port
// 10500, must be decrypted by tshark given only the esp_sa line that
// AppendWiresharkSA produced, and show the inner BEET UDP datagram with
// its marker.
func TestWiresharkDecrypts(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed (apt-get install tshark); CI installs it")
	}
	dir := t.TempDir()
	cfgDir := filepath.Join(dir, "config", "wireshark")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}

	src := netip.MustParseAddrPort("192.0.2.1:10500")
	dst := netip.MustParseAddrPort("192.0.2.2:10500")
	var capture bytes.Buffer
	w, err := pcap.NewWriter(&capture, pcap.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	var keylog []byte
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	type sent struct {
		spi    uint32
		seq    uint64
		marker string
	}
	var want []sent
	suites := []esp.Suite{esp.SuiteAESGCM16, esp.SuiteAES128CBCSHA256, esp.SuiteAES256CBCSHA256, esp.SuiteNullSHA256}
	for i, s := range suites {
		cfg := testConfig(s, 0x1a2b3c00+uint32(s))
		keylog = esp.AppendWiresharkSA(keylog, "IPv4", cfg)
		o, err := esp.NewOutbound(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for j := range 3 {
			marker := "hipnet-marker-" + s.String()[:7] + "-" + string(rune('a'+j))
			seg := esp.AppendUDP(nil, hit1, hit2, 40000, 40001, []byte(marker))
			pkt, err := o.Seal(nil, seg, esp.ProtoUDP)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteUDP(t0.Add(time.Duration(i*10+j)*time.Millisecond), src, dst, pkt); err != nil {
				t.Fatal(err)
			}
			want = append(want, sent{cfg.SPI, o.Seq(), marker})
		}
	}
	// Negative control: an SA whose esp_sa line carries the wrong key must
	// not reveal its marker, so the assertion above can only pass through
	// real decryption.
	ctl := testConfig(esp.SuiteAESGCM16, 0x0c0c0c0c)
	oc, _ := esp.NewOutbound(ctl)
	ctlPkt, _ := oc.Seal(nil, esp.AppendUDP(nil, hit1, hit2, 40000, 40001, []byte("hipnet-control")), esp.ProtoUDP)
	if err := w.WriteUDP(t0.Add(time.Second), src, dst, ctlPkt); err != nil {
		t.Fatal(err)
	}
	ctl.EncKey = seqBytes(0x99, 20)
	keylog = esp.AppendWiresharkSA(keylog, "IPv4", ctl)

	pcapFile := filepath.Join(dir, "esp.pcap")
	if err := os.WriteFile(pcapFile, capture.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "esp_sa"), keylog, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("esp_sa:\n%s", keylog)

	cmd := exec.Command(tshark, "-n", "-r", pcapFile,
		"-o", "esp.enable_encryption_decode:TRUE",
		"-d", "udp.port==10500,udpencap",
		"-T", "fields", "-E", "separator=|",
		"-e", "esp.spi", "-e", "esp.sequence", "-e", "udp.srcport", "-e", "data.data")
	// tshark reads its personal configuration, including the esp_sa UAT,
	// from $XDG_CONFIG_HOME/wireshark.
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "HOME="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	if s := stderr.String(); strings.Contains(s, "esp_sa") || strings.Contains(s, "rror") {
		t.Fatalf("tshark complained:\n%s", s)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(want)+1 {
		t.Fatalf("tshark printed %d lines for %d packets:\n%s", len(lines), len(want), out)
	}
	if strings.Contains(lines[len(lines)-1], hex.EncodeToString([]byte("hipnet-control"))) {
		t.Fatalf("control packet decrypted with a wrong key: %q", lines[len(lines)-1])
	}
	for k, line := range lines[:len(want)] {
		f := strings.Split(line, "|")
		if len(f) != 4 {
			t.Fatalf("line %q", line)
		}
		// The inner UDP header is dissected (ports 40000 -> 40001 after the
		// outer 10500), and the payload is the marker.
		data, _ := hex.DecodeString(strings.ReplaceAll(f[3], ":", ""))
		if !strings.Contains(f[2], "40000") || !bytes.Contains(data, []byte(want[k].marker)) {
			t.Errorf("packet %d (SPI %#x seq %d): tshark did not decrypt: %q", k, want[k].spi, want[k].seq, line)
		}
	}
	t.Logf("tshark output:\n%s", out)
}
