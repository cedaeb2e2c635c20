package hipnet

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMobilityTshark: a live failover, captured on the client's socket,
// read by Wireshark's HIP dissector: the address checks are UPDATEs with
// ECHO_REQUEST_SIGNED (RFC 8046 §5.4) and their signed answers carry
// ECHO_RESPONSE_SIGNED, and no HIP packet of the capture is malformed.
func TestMobilityTshark(t *testing.T) {
	tshark, capFile, capt, conn := recordedSocket(t, t.TempDir()) // tshark_test.go
	r := newMobilityRig(t, 2, Config{PacketConn: conn})
	k := r.stream(t)
	sh := r.server.HIT()
	verified(t, r.client, sh, r.paths[1].Addr(), 5*time.Second)
	// The stream flows before the path fails, as in TestMobilityFailover:
	// Dial no longer waits for the stream's answer, and a stream whose
	// first packets are lost with the path waits out QUIC's backed-off
	// PTO on top of the failover.
	flows(t, k, 16<<10, 5*time.Second)
	r.paths[0].Blackhole(true)
	movedTo(t, r.client, sh, r.paths[1].Addr(), 3*time.Second, "no failover")
	flows(t, k, 16<<10, 5*time.Second)
	finish(t, k)
	r.client.Close()
	if err := capt.Close(); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(int(r.client.LocalAddr().Port()))
	run := func(filter string, fields ...string) string {
		t.Helper()
		args := []string{"-n", "-r", capFile, "-d", "udp.port==" + port + ",hip", "-Y", filter, "-T", "fields"}
		for _, f := range fields {
			args = append(args, "-e", f)
		}
		out, err := exec.Command(tshark, args...).Output()
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// 897 ECHO_REQUEST_SIGNED, 961 ECHO_RESPONSE_SIGNED (RFC 7401 §5.2.20-21).
	probes := run("hip.packet_type == 16 && hip.type == 897", "frame.number")
	answers := run("hip.packet_type == 16 && hip.type == 961", "frame.number")
	if probes == "" || answers == "" {
		t.Fatalf("capture has no probe (%q) or no answer (%q)", probes, answers)
	}
	if bad := run("hip && (_ws.malformed || _ws.expert.severity >= error)", "frame.number"); bad != "" {
		t.Fatalf("tshark reports malformed or error HIP packets: frames %s", bad)
	}
	t.Logf("tshark: %d probes, %d answers, none malformed", len(strings.Fields(probes)), len(strings.Fields(answers)))
}
