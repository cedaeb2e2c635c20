package overlay

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

// socket is the node's one UDP socket (DESIGN.md "One UDP port"). On Linux
// with a *net.UDPConn it reads and writes in batches (recvmmsg, sendmmsg
// through golang.org/x/net); otherwise one datagram per call.
type socket struct {
	pc    net.PacketConn
	udp   *net.UDPConn // nil when pc is not a *net.UDPConn
	batch batchConn    // nil: no batching
	local netip.AddrPort
}

// batchConn is what *ipv4.PacketConn and *ipv6.PacketConn have in common
// (both use socket.Message).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// socketBuffer is the receive and send buffer size we ask for on sockets
// we open (a socket passed in Config.PacketConn is left as it is).
const socketBuffer = 4 << 20

func newSocket(cfg *Config) (*socket, error) {
	pc := cfg.PacketConn
	if pc == nil {
		l, err := net.ListenPacket("udp", cfg.listenAddr())
		if err != nil {
			return nil, err
		}
		growBuffers(l.(*net.UDPConn), socketBuffer)
		pc = l
	}
	s := &socket{pc: pc, local: addrPortOf(pc.LocalAddr())}
	if u, ok := pc.(*net.UDPConn); ok {
		s.udp = u
		s.batch = newBatchConn(u)
	}
	return s, nil
}

func (s *socket) close() error { return s.pc.Close() }

// addrPortOf converts a socket address to a netip.AddrPort with an
// IPv4-mapped address unmapped, so that one peer has one spelling.
func addrPortOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case interface{ AddrPort() netip.AddrPort }:
		ap = a.AddrPort()
	case nil:
		return ap
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// writeTo sends one datagram. With a *net.UDPConn it allocates nothing.
func (s *socket) writeTo(b []byte, to netip.AddrPort) error {
	if s.udp != nil {
		_, err := s.udp.WriteToUDPAddrPort(b, to)
		return err
	}
	_, err := s.pc.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

// writeBatch sends pkts to one destination, with sendmmsg where available.
// It returns how many were sent and the first error.
func (s *socket) writeBatch(pkts [][]byte, to netip.AddrPort) (int, error) {
	if s.batch == nil || len(pkts) < 2 {
		for i, b := range pkts {
			if err := s.writeTo(b, to); err != nil {
				return i, err
			}
		}
		return len(pkts), nil
	}
	ua := net.UDPAddrFromAddrPort(to)
	ms := make([]ipv4.Message, len(pkts))
	for i, b := range pkts {
		ms[i].Buffers = [][]byte{b}
		ms[i].Addr = ua
	}
	sent := 0
	for sent < len(ms) {
		n, err := s.batch.WriteBatch(ms[sent:], 0)
		sent += n
		if err != nil {
			return sent, err
		}
		if n == 0 {
			break
		}
	}
	return sent, nil
}

// reader holds one read loop's buffers: readBatch datagrams of up to
// maxDatagram octets when batching, one otherwise. They are reused for every
// read; the receive path copies what it keeps.
type reader struct {
	sock *socket
	bufs [][]byte
	n    []int
	from []netip.AddrPort
	msgs []ipv4.Message
}

func (s *socket) newReader() *reader {
	k := 1
	if s.batch != nil {
		k = readBatch
	}
	r := &reader{sock: s, bufs: make([][]byte, k), n: make([]int, k), from: make([]netip.AddrPort, k)}
	for i := range r.bufs {
		r.bufs[i] = make([]byte, maxDatagram)
	}
	if s.batch != nil {
		r.msgs = make([]ipv4.Message, k)
		for i := range r.msgs {
			r.msgs[i].Buffers = [][]byte{r.bufs[i]}
		}
	}
	return r
}

// read blocks for the next datagrams and returns how many arrived; datagram
// i is r.bufs[i][:r.n[i]] from r.from[i].
func (r *reader) read() (int, error) {
	s := r.sock
	switch {
	case s.batch != nil:
		n, err := s.batch.ReadBatch(r.msgs, 0)
		for i := 0; i < n; i++ {
			r.n[i] = r.msgs[i].N
			r.from[i] = addrPortOf(r.msgs[i].Addr)
		}
		return n, err
	case s.udp != nil:
		n, from, err := s.udp.ReadFromUDPAddrPort(r.bufs[0])
		if err != nil {
			return 0, err
		}
		r.n[0], r.from[0] = n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		return 1, nil
	default:
		n, from, err := s.pc.ReadFrom(r.bufs[0])
		if err != nil {
			return 0, err
		}
		r.n[0], r.from[0] = n, addrPortOf(from)
		return 1, nil
	}
}
