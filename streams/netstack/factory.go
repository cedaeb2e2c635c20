package netstack

import "hipnet.dev/streams"

// Streams is a streams.Factory: it makes this package the stream
// transport of a hipnet node,
//
//	node, err := hipnet.NewNode(hipnet.Config{Identity: id, Streams: netstack.Streams})
//
// with the defaults of Config. Only a binary that names it links gVisor.
func Streams(env streams.Env) (streams.Transport, error) {
	t, err := New(env.Link, Config{Logger: env.Logger, Associate: env.Associate})
	if err != nil {
		return nil, err
	}
	return t, nil
}
