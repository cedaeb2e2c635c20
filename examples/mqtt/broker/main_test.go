package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"hipnet.dev/examples/mqtt/internal/hipmqtt"
	"hipnet.dev/examples/mqtt/internal/testnet"
	"hipnet.dev/hipnet"
)

// brokerRun runs the broker program with args on a pipe and returns its
// HIT, its output lines after the HIT line, and a stop function that
// cancels it and returns run's error.
func brokerRun(t *testing.T, args ...string) (hipnet.HIT, <-chan string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, pw, io.Discard)
		pw.Close()
	}()
	lines := testnet.Lines(pr)
	first := testnet.Next(t, lines, 20*time.Second)
	text, ok := strings.CutPrefix(first, "HIT ")
	if !ok {
		cancel()
		t.Fatalf("first line %q (run: %v)", first, <-done)
	}
	hit, err := hipnet.ParseHIT(text)
	if err != nil {
		t.Fatal(err)
	}
	stop := testnet.Stopper(t, "broker", cancel, done)
	return hit, lines, stop
}

// mqttClient connects a paho client on node to the broker with client id
// cid, without retries; lost, if not nil, is signalled when the
// connection is lost.
func mqttClient(node *hipnet.Node, broker hipnet.HIT, cid string, lost chan<- error) (paho.Client, error) {
	o := hipmqtt.ClientOptions(node, broker, 0)
	o.SetClientID(cid)
	o.SetAutoReconnect(false)
	o.SetConnectTimeout(15 * time.Second)
	o.SetConnectionLostHandler(func(_ paho.Client, err error) {
		if lost != nil {
			lost <- err
		}
	})
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(20 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	return c, tok.Error()
}

type line struct {
	clientID, topic string
	payload         []byte
}

func parseLine(t *testing.T, s string) line {
	t.Helper()
	f := strings.SplitN(s, " ", 3)
	if len(f) != 3 {
		t.Fatalf("message line %q", s)
	}
	return line{f[0], f[1], []byte(f[2])}
}

// TestBrokerLoopback runs the broker program, a relay and devices on
// 127.0.0.1. The devices know the broker by its HIT alone and reach it
// through the relay. A listed device publishes telemetry and the broker
// prints it under the device's HIT as client id; an unlisted device is
// refused by Config.Authorize; a listed device may neither claim another
// HIT as its client id, nor subscribe outside its own topics, nor
// publish under another device's HIT.
func TestBrokerLoopback(t *testing.T) {
	dir := t.TempDir()
	r, relaySpec := testnet.Relay(t, nil)
	dev, other, stranger := testnet.Identity(t), testnet.Identity(t), testnet.Identity(t)
	allow := filepath.Join(dir, "devices.allow")
	os.WriteFile(allow, []byte("# devices\n"+dev.HIT().String()+"\n"+other.HIT().String()+" # the second one\n"), 0o600)
	brokerHIT, lines, stop := brokerRun(t, "-identity", filepath.Join(dir, "broker.key"), "-listen", "127.0.0.1:0",
		"-relay", relaySpec, "-allow", allow)
	testnet.WaitRegistered(t, r, brokerHIT)

	// A listed device, through the device code, sees its telemetry
	// printed by the broker with its HIT as client id.
	devNode := testnet.Node(t, dev, nil, relaySpec, brokerHIT)
	ctx, cancel := context.WithCancel(context.Background())
	devDone := make(chan error, 1)
	go func() {
		devDone <- hipmqtt.RunDevice(ctx, hipmqtt.DeviceConfig{Node: devNode, Broker: brokerHIT, Interval: 100 * time.Millisecond})
	}()
	for want := uint64(1); want <= 5; want++ {
		l := parseLine(t, testnet.Next(t, lines, 30*time.Second))
		if l.clientID != dev.HIT().String() || l.topic != hipmqtt.TelemetryTopic(dev.HIT()) {
			t.Fatalf("message from %q on %q", l.clientID, l.topic)
		}
		var tm hipmqtt.Telemetry
		if err := json.Unmarshal(l.payload, &tm); err != nil || tm.Device != dev.HIT() || tm.Seq != want {
			t.Fatalf("payload %s (want seq %d): %v", l.payload, want, err)
		}
	}
	cancel()
	if err := <-devDone; err != nil {
		t.Fatalf("device: %v", err)
	}

	// An unlisted device gets no association: HIP refuses it before MQTT.
	strNode := testnet.Node(t, stranger, nil, relaySpec, brokerHIT)
	testnet.WaitRegistered(t, r, stranger.HIT())
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	if c, err := strNode.DialContext(dctx, "tcp", (&hipnet.Addr{HIT: brokerHIT, Port: hipmqtt.DefaultPort}).String()); err == nil {
		c.Close()
		t.Fatal("an unlisted device reached the broker")
	} else {
		t.Logf("unlisted device: %v", err)
	}

	// A listed device may spell its HIT as it likes; one that claims
	// another HIT as client id is refused.
	otherNode := testnet.Node(t, other, nil, relaySpec, brokerHIT)
	c, err := mqttClient(otherNode, brokerHIT, strings.ToUpper(other.HIT().Addr().StringExpanded()), nil)
	if err != nil {
		t.Fatalf("own HIT, expanded, as client id: %v", err)
	}
	c.Disconnect(0)
	if c, err := mqttClient(otherNode, brokerHIT, dev.HIT().String(), nil); err == nil {
		c.Disconnect(0)
		t.Fatal("client id of another HIT accepted")
	} else if !strings.Contains(err.Error(), "identifier rejected") {
		t.Fatalf("client id of another HIT: %v", err)
	}

	// With an empty client id it is named by its HIT, may use its own
	// topics, and nothing else.
	lost := make(chan error, 1)
	c, err = mqttClient(otherNode, brokerHIT, "", lost)
	if err != nil {
		t.Fatal(err)
	}
	own := hipmqtt.DeviceTopicPrefix(other.HIT()) + "status"
	st := c.SubscribeMultiple(map[string]byte{"devices/#": 1, own: 1}, nil)
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		t.Fatalf("subscribe: %v", st.Error())
	}
	if got := st.(*paho.SubscribeToken).Result(); got["devices/#"] != 0x80 || got[own] != 1 {
		t.Fatalf("subscribe results %v: want devices/# refused (0x80), own topic granted QoS 1", got)
	}
	if pt := c.Publish(own, 1, false, "online"); !pt.WaitTimeout(10*time.Second) || pt.Error() != nil {
		t.Fatalf("publish on its own topic: %v", pt.Error())
	}
	l := parseLine(t, testnet.Next(t, lines, 10*time.Second))
	if l.clientID != other.HIT().String() || l.topic != own || string(l.payload) != "online" {
		t.Fatalf("got %q %q %q", l.clientID, l.topic, l.payload)
	}
	c.Publish(hipmqtt.TelemetryTopic(dev.HIT()), 1, false, "forged")
	select {
	case err := <-lost: // MQTT 3.1.1 has no negative PUBACK: the broker disconnects
		t.Logf("publisher under another HIT disconnected: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("publishing under another HIT did not end the session")
	}
	select {
	case s := <-lines:
		t.Fatalf("a refused publish reached the broker's subscriber: %q", s)
	case <-time.After(300 * time.Millisecond):
	}

	if err := stop(); err != nil {
		t.Fatalf("broker: %v", err)
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		`{"seq":1}`:             `{"seq":1}`,
		"température 21 °C":     "température 21 °C",
		"x\n2001:20::1 devices": `"x\n2001:20::1 devices"`,
		"\xff":                  `"\xff"`,
	} {
		if got := printable([]byte(in)); got != want {
			t.Errorf("printable(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestRunFlags: the broker refuses to start without an allow file, or
// with a relay it could not authenticate.
func TestRunFlags(t *testing.T) {
	dir := t.TempDir()
	allow := filepath.Join(dir, "allow")
	os.WriteFile(allow, nil, 0o600)
	key := filepath.Join(dir, "b.key")
	relay := "2001:20::1@127.0.0.1:10500"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-identity", key, "-relay", relay}, "-allow"},
		{[]string{"-identity", key, "-allow", allow}, "no relay"},
		{[]string{"-identity", key, "-allow", allow, "-relay", "127.0.0.1:10500"}, "HIT@host:port"},
		{[]string{"-identity", key, "-allow", filepath.Join(dir, "missing"), "-relay", relay}, "no such file"},
	} {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
