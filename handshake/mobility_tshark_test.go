package handshake

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/pcap"
)

// TestMobilityTshark is the independent decoder's view of the mobility
// UPDATEs: Wireshark's HIP dissector reads the announcement (ESP_INFO,
// LOCATOR_SET with a type 1 and a type 2 locator, SEQ), its ACK, a probe
// (ECHO_REQUEST_SIGNED), its answer (ECHO_RESPONSE_SIGNED), and an
// ECHO_REQUEST_SIGNED in a SEQ UPDATE with its ACK, as raw HIP over IPv6,
// with the locators and opaque data we put in and no malformed-packet or
// error expert info.
func TestMobilityTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed (apt-get install tshark); CI installs it")
	}
	pkts := mobilityPackets(t)[:6]
	src, dst := netip.MustParseAddr("2001:db8:a::1"), netip.MustParseAddr("2001:db8:b::1")
	capFile := filepath.Join(t.TempDir(), "mobility.pcap")
	f, err := os.Create(capFile)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcap.NewWriter(f, pcap.LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		s, d := src, dst
		if i%2 == 1 { // the answers go the other way
			s, d = d, s
		}
		p = append([]byte(nil), p...)
		wire.FillChecksum(p, s, d)
		if err := w.WriteIP(t0, s, d, 139, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tshark, append([]string{"-n", "-r", capFile}, args...)...).Output()
		if err != nil {
			t.Fatalf("tshark %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := run("-Y", "hip", "-T", "fields", "-E", "separator=/t", "-E", "aggregator=,",
		"-e", "hip.packet_type", "-e", "hip.type", "-e", "hip.tlv.locator_type", "-e", "hip.tlv.locator_spi",
		"-e", "hip.tlv.locator_address", "-e", "hip.tlv.opaque_data")
	t.Logf("tshark (type, parameters, locator types, SPIs, addresses, opaque data):\n%s", out)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != len(pkts) {
		t.Fatalf("tshark shows %d HIP packets, want %d", len(lines), len(pkts))
	}
	hexOf := func(s string) string { return fmt.Sprintf("%x", s) }
	// The dissector shows each locator's address twice, in a row.
	dedup := func(s string) string {
		var out []string
		for _, x := range strings.Split(s, ",") {
			if len(out) == 0 || out[len(out)-1] != x {
				out = append(out, x)
			}
		}
		return strings.Join(out, ",")
	}
	want := []struct{ params, locTypes, addrs, opaque string }{
		{"65,193,385,61505,61697", "1,2", "2001:db8::1,::ffff:192.0.2.7", ""},
		{"449,61505,61697", "", "", ""},
		{"897,61505,61697", "", "", hexOf("probe-nonce-0001")},
		{"961,61505,61697", "", "", hexOf("probe-nonce-0001")},
		{"385,897,61505,61697", "", "", hexOf("seq-nonce")},
		{"449,961,61505,61697", "", "", hexOf("seq-nonce")},
	}
	for i, line := range lines {
		fl := strings.Split(strings.TrimRight(line, "\r"), "\t")
		if len(fl) != 6 {
			t.Fatalf("tshark line %q: %d fields, want 6", line, len(fl))
		}
		w := want[i]
		if fl[0] != "16" || fl[1] != w.params || fl[2] != w.locTypes || dedup(fl[4]) != w.addrs ||
			strings.ReplaceAll(fl[5], ":", "") != w.opaque {
			t.Errorf("packet %d: tshark reads %q, want UPDATE with %+v", i, fl, w)
		}
	}
	if spis := strings.Split(strings.Split(lines[0], "\t")[3], ","); len(spis) != 2 || spis[0] != "0x00001001" {
		t.Errorf("locator SPIs %v, want the announcer's inbound SPI 0x00001001 first", spis)
	}
	if out := run("-Y", "_ws.malformed || _ws.expert.severity >= error", "-T", "fields", "-e", "frame.number"); strings.TrimSpace(out) != "" {
		t.Fatalf("tshark reports malformed or error packets in frames:\n%s\n%s", out, run("-V", "-Y", "_ws.malformed || _ws.expert.severity >= error"))
	}
}
