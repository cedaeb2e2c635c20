package hipmqtt

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"hipnet.dev/hipnet"
)

// DeviceConfig configures RunDevice. Node and Broker are required.
type DeviceConfig struct {
	Node   *hipnet.Node
	Broker hipnet.HIT // the broker, by HIT alone

	// Port is the broker's inner port. Zero: DefaultPort.
	Port int

	// Interval is the time between two publishes. Zero: 10 s.
	Interval time.Duration

	// Logger receives the device's logs. Nil discards.
	Logger *slog.Logger
}

// Telemetry is the JSON payload the device publishes.
type Telemetry struct {
	Device  hipnet.HIT `json:"device"`
	Seq     uint64     `json:"seq"`
	Time    time.Time  `json:"time"`
	Uptime  float64    `json:"uptime_s"`
	HIPPath string     `json:"hip_path,omitempty"` // "relayed" or "direct": how ESP reaches the broker now
}

// Reconnection pacing: the first connection is retried every
// connectRetry, a lost one after a back-off of at most maxReconnect.
const (
	connectRetry = 2 * time.Second
	maxReconnect = 30 * time.Second
	keepAlive    = 30 * time.Second
)

// RunDevice connects to the broker and publishes a Telemetry to
// devices/<HIT>/telemetry with QoS 1 at once and then every Interval,
// until ctx ends; then it disconnects and returns nil. Connecting is
// retried and a lost connection is re-established by paho; messages
// published meanwhile are kept and sent once connected (at least once,
// not necessarily in order: Telemetry.Seq tells).
func RunDevice(ctx context.Context, cfg DeviceConfig) error {
	if cfg.Node == nil || cfg.Broker.IsZero() {
		return errors.New("hipmqtt: DeviceConfig.Node and Broker are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	me := cfg.Node.HIT()
	topic := TelemetryTopic(me)
	start := time.Now()

	o := ClientOptions(cfg.Node, cfg.Broker, cfg.Port)
	o.SetKeepAlive(keepAlive)
	o.SetCleanSession(true)
	o.SetAutoReconnect(true)
	o.SetConnectRetry(true)
	o.SetConnectRetryInterval(connectRetry)
	o.SetMaxReconnectInterval(maxReconnect)
	o.SetOnConnectHandler(func(paho.Client) {
		log.Info("connected", "broker", cfg.Broker.String(), "client_id", me.String())
	})
	o.SetConnectionLostHandler(func(_ paho.Client, err error) {
		log.Warn("connection lost", "error", err)
	})
	o.SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
		log.Info("reconnecting", "broker", cfg.Broker.String())
	})
	o.SetConnectionNotificationHandler(func(_ paho.Client, n paho.ConnectionNotification) {
		if f, ok := n.(paho.ConnectionNotificationFailed); ok {
			log.Warn("connect failed", "broker", cfg.Broker.String(), "error", f.Reason)
		}
	})
	c := paho.NewClient(o)
	defer c.Disconnect(250)

	tok := c.Connect() // with ConnectRetry, done once connected
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return err
		}
	case <-ctx.Done():
		return nil
	}

	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		t := Telemetry{Device: me, Seq: seq, Time: time.Now().UTC(), Uptime: time.Since(start).Seconds()}
		for _, p := range cfg.Node.Peers() {
			if p.HIT == cfg.Broker {
				t.HIPPath = p.Path
			}
		}
		payload, err := json.Marshal(t)
		if err != nil {
			return err
		}
		pt := c.Publish(topic, 1, false, payload)
		if !c.IsConnectionOpen() { // kept by paho, sent once reconnected
			log.Debug("publish queued while disconnected", "seq", seq)
		} else {
			select {
			case <-pt.Done():
				if err := pt.Error(); err != nil {
					log.Warn("publish", "seq", seq, "error", err)
				} else {
					log.Debug("published", "topic", topic, "seq", seq)
				}
			case <-tick.C: // not acknowledged yet: paho keeps it and resends
				log.Warn("publish not acknowledged within the interval", "seq", seq)
				continue
			case <-ctx.Done():
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		}
	}
}
