package hipnet

import (
	"bytes"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"hipnet.dev/internal/pcap"
)

// TestTshark is the independent decoder of DESIGN.md "Testing": tshark
// reads the base exchange of a capture as HIP packet types 1-4 with no
// malformed-packet or error expert info, and Wireshark's ESP decryption,
// fed only from Config.KeyLog, reveals a datagram's plaintext.
func TestTshark(t *testing.T) {
	dir := t.TempDir()
	tshark, capFile, capt, conn := recordedSocket(t, dir)
	var keylog bytes.Buffer
	client, server := pairNodes(t, Config{PacketConn: conn, KeyLog: &keylog}, Config{})
	spc := listenPacket(t, server, ":40123")
	marker := "hipnet-plaintext-marker-" + strconv.Itoa(int(time.Now().UnixNano()%1e6))
	c, err := client.DialContext(ctxT(t, 10*time.Second), "udp", addrOf(server, 40123))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(marker)); err != nil {
		t.Fatal(err)
	}
	spc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 200)
	n, _, err := spc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != marker {
		t.Fatalf("datagram: %q %v", buf[:n], err)
	}
	c.Close()
	client.Close()
	if err := capt.Close(); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(int(server.LocalAddr().Port()))

	// 1. The base exchange as HIP.
	out, err := exec.Command(tshark, "-n", "-r", capFile, "-d", "udp.port=="+port+",hip",
		"-Y", "hip", "-T", "fields", "-e", "hip.packet_type").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	types := strings.Fields(string(out))
	if len(types) < 4 || strings.Join(types[:4], " ") != "1 2 3 4" {
		t.Fatalf("HIP packet types %v, want 1 2 3 4 first", types)
	}
	out, err = exec.Command(tshark, "-n", "-r", capFile, "-d", "udp.port=="+port+",hip",
		"-Y", "hip && (_ws.malformed || _ws.expert.severity >= error)", "-T", "fields", "-e", "frame.number").Output()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("tshark reports malformed or error packets: %v\n%s", err, out)
	}

	// 2. ESP decrypted with the key log alone.
	cfg := filepath.Join(dir, "config", "wireshark")
	os.MkdirAll(cfg, 0o755)
	if err := os.WriteFile(filepath.Join(cfg, "esp_sa"), keylog.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tshark, "-n", "-r", capFile, "-o", "esp.enable_encryption_decode:TRUE",
		"-d", "udp.port=="+port+",udpencap", "-T", "fields", "-e", "data.data")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "HOME="+dir)
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	if !strings.Contains(strings.ReplaceAll(string(out), ":", ""), hex.EncodeToString([]byte(marker))) {
		t.Fatalf("tshark did not reveal the datagram with the key log (%d key lines):\n%.2000s", strings.Count(keylog.String(), "\n"), out)
	}
}

// recordedSocket skips the test without tshark; otherwise it returns
// tshark's path, a capture file in dir, and a loopback UDP socket whose
// datagrams the capture records (closed at the end of the test).
func recordedSocket(t *testing.T, dir string) (tshark, capFile string, capt *pcap.Capture, conn net.PacketConn) {
	t.Helper()
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed (apt-get install tshark); CI installs it")
	}
	capFile = filepath.Join(dir, "hip.pcap")
	if capt, err = pcap.CreateCapture(capFile); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { capt.Close() })
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return tshark, capFile, capt, capt.Conn(udp)
}
