package hipmqtt

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"hipnet.dev/hipnet"
)

// DefaultPort is the inner port of the broker: MQTT's 1883, but inside
// HIP, so with neither TLS nor the 8883 convention.
const DefaultPort = 1883

// BrokerConfig configures a Broker. Node is required.
type BrokerConfig struct {
	// Node is the broker's hipnet node; its Config.Authorize decides
	// which devices may associate at all.
	Node *hipnet.Node

	// Port is the inner stream port to serve on. Zero: DefaultPort.
	Port int

	// Logger receives the broker's logs (mochi's included). Nil discards.
	Logger *slog.Logger

	// OnMessage, if set, receives every message published under
	// devices/ that the ACL let through, from mochi's inline client (a
	// subscriber inside the broker). It runs on the publisher's session
	// goroutine: it must be quick.
	OnMessage func(Message)
}

// Message is one publish as the broker accepted it.
type Message struct {
	ClientID string // the publisher's client identifier: its HIT
	Topic    string
	Payload  []byte
	QoS      byte
}

// Broker is an embedded mochi-mqtt broker served on a hipnet listener.
type Broker struct {
	srv       *mqtt.Server
	ln        net.Listener
	closeOnce sync.Once
}

// NewBroker starts a broker on cfg.Node.
func NewBroker(cfg BrokerConfig) (*Broker, error) {
	if cfg.Node == nil {
		return nil, errors.New("hipmqtt: BrokerConfig.Node is required")
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := cfg.Node.Listen("tcp", fmt.Sprintf(":%d", cfg.Port))
	if err != nil {
		return nil, err
	}
	srv := mqtt.New(&mqtt.Options{Logger: log, InlineClient: true})
	if err := srv.AddHook(&identityHook{srv: srv, log: log}, nil); err != nil {
		ln.Close()
		return nil, err
	}
	if err := srv.AddListener(NewListener("hip", ln)); err != nil {
		ln.Close()
		return nil, err
	}
	if cfg.OnMessage != nil {
		on := cfg.OnMessage
		err := srv.Subscribe("devices/#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
			on(Message{ClientID: pk.Origin, Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos})
		})
		if err != nil {
			srv.Close()
			return nil, err
		}
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, err
	}
	return &Broker{srv: srv, ln: ln}, nil
}

// Addr returns the broker's address, "[HIT]:port".
func (b *Broker) Addr() net.Addr { return b.ln.Addr() }

// Disconnect ends the session of a connected client, e.g. a device just
// removed from the allow-list; it reports whether there was one. The
// client may reconnect unless its node is refused too.
func (b *Broker) Disconnect(clientID string) bool {
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok || cl.Net.Inline {
		return false
	}
	_ = b.srv.DisconnectClient(cl, packets.ErrAdministrativeAction)
	return true
}

// Close disconnects every client and stops the broker. It does not
// close the node.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() { b.srv.Close() })
	return nil
}
