package hipmqtt

import (
	"context"
	"net"
	"net/url"

	paho "github.com/eclipse/paho.mqtt.golang"

	"hipnet.dev/hipnet"
)

// ClientOptions returns paho options for a client on node that connects to
// the broker named by its HIT, on inner port port (0: DefaultPort). The
// connection is a hipnet stream from node.DialContext: no TLS, no
// password; the broker knows the client by its HIT, which is also set as
// its client identifier. The broker address in paho is
// "tcp://[HIT]:port"; only the custom dialer ever reads it.
func ClientOptions(node *hipnet.Node, broker hipnet.HIT, port int) *paho.ClientOptions {
	if port == 0 {
		port = DefaultPort
	}
	o := paho.NewClientOptions()
	o.AddBroker("tcp://" + (&hipnet.Addr{HIT: broker, Port: port}).String())
	o.SetClientID(node.HIT().String())
	o.SetProtocolVersion(4) // MQTT 3.1.1, without paho's fallback to 3.1 after a refusal
	o.SetCustomOpenConnectionFn(func(uri *url.URL, opts paho.ClientOptions) (net.Conn, error) {
		ctx := context.Background()
		if opts.ConnectTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, opts.ConnectTimeout)
			defer cancel()
		}
		return node.DialContext(ctx, "tcp", uri.Host)
	})
	return o
}
