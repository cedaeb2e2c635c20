package hipmqtt

import (
	"log/slog"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"hipnet.dev/hipnet"
)

// identityHook maps the peer HIT of a connection to its MQTT identity and
// enforces the topic ACL. The HIT is taken from the connection, never
// from anything the client sends: hipnet authenticated it in the base
// exchange, and Config.Authorize admitted it.
type identityHook struct {
	mqtt.HookBase
	srv *mqtt.Server
	log *slog.Logger
}

func (h *identityHook) ID() string { return "hip-identity" }

func (h *identityHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck:
		return true
	}
	return false
}

// OnConnect runs after CONNECT is parsed and before the session is set
// up: the client identifier must be the peer's HIT (in any IPv6 spelling)
// or empty, and becomes the HIT in its canonical form.
func (h *identityHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	hit, ok := PeerHIT(cl.Net.Conn)
	if !ok {
		_ = h.srv.SendConnack(cl, packets.ErrNotAuthorized, false, nil)
		return packets.ErrNotAuthorized
	}
	if id := pk.Connect.ClientIdentifier; id != "" {
		if claimed, err := hipnet.ParseHIT(id); err != nil || claimed != hit {
			h.log.Warn("client identifier refused", "peer", hit.String(), "client_id", id)
			_ = h.srv.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
			return packets.ErrClientIdentifierNotValid
		}
	}
	cl.ID = hit.String()
	if pk.Connect.ClientIdentifier == "" {
		cl.Properties.Props.AssignedClientID = cl.ID // MQTT 5 tells the client
	}
	h.log.Info("device connected", "client", cl.ID, "protocol", cl.Properties.ProtocolVersion)
	return nil
}

// OnConnectAuthenticate admits every client that came through a hipnet
// listener: its key was checked by HIP, and there are no passwords.
func (h *identityHook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	_, ok := PeerHIT(cl.Net.Conn)
	return ok
}

// OnACLCheck allows a client to publish (write) and subscribe or receive
// (read) only under devices/<its HIT>/.
func (h *identityHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	hit, ok := PeerHIT(cl.Net.Conn)
	if ok && strings.HasPrefix(topic, DeviceTopicPrefix(hit)) {
		return true
	}
	h.log.Warn("acl denied", "client", cl.ID, "topic", topic, "write", write)
	return false
}
