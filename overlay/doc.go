// Package overlay is hipnet's in-process stack: the one place with
// sockets, goroutines and clocks. It owns one UDP socket per node and
// demultiplexes it (RFC 5770 §5.1, RFC 3948: a zero marker means HIP
// control, a non-zero SPI means ESP, a STUN cookie means STUN), runs the
// sans-I/O handshake state machines with their timers, keeps the
// association table (hashicorp/go-memdb) with an allocation-free SPI → SA
// lookup on the data path, and carries inner UDP (BEET, RFC 7402 App. B)
// between HITs: datagram endpoints for ListenPacket, and the transport of
// the QUIC streams of package overlay/streams.
package overlay
