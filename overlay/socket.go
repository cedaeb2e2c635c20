package overlay

import (
	"errors"
	"net"
	"net/netip"

	"hipnet.dev/internal/udpbatch"
)

// socket is the node's one UDP socket (DESIGN.md "One UDP port"). With a
// *net.UDPConn it reads and writes in batches through internal/udpbatch:
// recvmmsg with UDP GRO in, sendmmsg with UDP GSO out, where the kernel has
// them; otherwise (a Config.PacketConn of another type) one datagram per
// call.
type socket struct {
	pc    net.PacketConn
	udp   *net.UDPConn   // nil when pc is not a *net.UDPConn
	batch *udpbatch.Conn // nil: no batching
	local netip.AddrPort
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
		s.batch = udpbatch.New(u)
	}
	return s, nil
}

func (s *socket) close() error { return s.pc.Close() }

// caps reports the batching features in use.
func (s *socket) caps() udpbatch.Caps {
	if s.batch == nil {
		return udpbatch.Caps{}
	}
	return s.batch.Caps()
}

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

// writer is one sending goroutine's batch writer (tx.go's sender): its
// scratch is reused, so that a batch allocates nothing.
type writer struct {
	sock *socket
	bw   *udpbatch.Writer // nil: one datagram per call
	pkts [][]byte
	to   []netip.AddrPort
}

func (s *socket) newWriter(max int) *writer {
	w := &writer{sock: s, pkts: make([][]byte, 0, max), to: make([]netip.AddrPort, 0, max)}
	if s.batch != nil {
		w.bw = s.batch.NewWriter(min(max, udpbatch.MaxBatch))
	}
	return w
}

// write sends the batch in order. A datagram the network refuses is
// skipped and counted by the caller from the returned number; only a
// closed socket ends the batch early.
func (w *writer) write(batch []txPacket) (sent int, err error) {
	if w.bw == nil {
		for _, p := range batch {
			if e := w.sock.writeTo((*p.buf)[:p.n], p.to); e != nil {
				err = e
				continue
			}
			sent++
		}
		return sent, err
	}
	w.pkts, w.to = w.pkts[:0], w.to[:0]
	for _, p := range batch {
		w.pkts = append(w.pkts, (*p.buf)[:p.n])
		w.to = append(w.to, p.to)
	}
	for off := 0; off < len(w.pkts); {
		n, e := w.bw.WriteBatch(w.pkts[off:], w.to[off:])
		sent += n
		off += n
		if e == nil {
			break
		}
		err = e
		if errors.Is(e, net.ErrClosed) {
			break
		}
		off++ // pkts[off] was refused (no route, …): lost, as on the wire
	}
	return sent, err
}

// reader holds one read loop's buffers, reused for every read; the receive
// path copies what it keeps.
type reader struct {
	sock *socket
	br   *udpbatch.Reader // nil: one datagram per call into buf
	buf  []byte
	n    int
	from netip.AddrPort
}

func (s *socket) newReader() *reader {
	r := &reader{sock: s}
	if s.batch != nil {
		r.br = s.batch.NewReader(readBatch)
	} else {
		r.buf = make([]byte, maxDatagram)
	}
	return r
}

// read blocks for the next datagrams and returns how many arrived; see
// datagram.
func (r *reader) read() (int, error) {
	if r.br != nil {
		return r.br.Read()
	}
	s := r.sock
	var (
		n    int
		from netip.AddrPort
		err  error
	)
	if s.udp != nil {
		n, from, err = s.udp.ReadFromUDPAddrPort(r.buf)
	} else {
		var a net.Addr
		n, a, err = s.pc.ReadFrom(r.buf)
		from = addrPortOf(a)
	}
	if err != nil {
		return 0, err
	}
	r.n, r.from = n, unmapPort(from)
	return 1, nil
}

// datagram returns datagram i of the last read: its octets, valid until
// the next read, and its source.
func (r *reader) datagram(i int) ([]byte, netip.AddrPort) {
	if r.br != nil {
		return r.br.Datagram(i)
	}
	return r.buf[:r.n], r.from
}
