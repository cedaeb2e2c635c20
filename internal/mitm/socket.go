package mitm

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Socket is a UDP socket on a loopback address that counts what it sends
// and records (or hands to a handler) what it receives: a third address
// for replays, or one of a flood's sources. Its methods are safe for
// concurrent use.
type Socket struct {
	conn *net.UDPConn
	addr netip.AddrPort

	mu      sync.Mutex
	rec     recorder
	record  bool
	handler func(Datagram)
	recv    Counts
	sent    Counts

	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Listen opens a Socket on src, a loopback address (any of 127.0.0.0/8
// on Linux, or ::1), on an ephemeral port. It records what it receives
// until SetRecord(false).
func Listen(src netip.Addr) (*Socket, error) {
	conn, addr, err := listenUDP(netip.AddrPortFrom(src, 0))
	if err != nil {
		return nil, err
	}
	s := &Socket{conn: conn, addr: addr, record: true}
	s.wg.Add(1)
	go s.loop()
	return s, nil
}

// Addr is the socket's address.
func (s *Socket) Addr() netip.AddrPort { return s.addr }

// SetRecord turns recording of received datagrams on or off (a flood's
// sockets only count); they are counted either way.
func (s *Socket) SetRecord(on bool) {
	s.mu.Lock()
	s.record = on
	s.mu.Unlock()
}

// SetHandler sets a function called, on the socket's goroutine, with each
// datagram received (its Data is the handler's own copy). It must not
// block for long: the socket does not read meanwhile.
func (s *Socket) SetHandler(h func(Datagram)) {
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
}

// SetReadBuffer sets the socket's receive buffer, so that a burst of
// answers to a flood is not lost before it is counted.
func (s *Socket) SetReadBuffer(n int) error { return s.conn.SetReadBuffer(n) }

// Send sends b to dst, a loopback address.
func (s *Socket) Send(dst netip.AddrPort, b []byte) error {
	dst = unmap(dst)
	if !isLoopback(dst.Addr()) {
		return fmt.Errorf("mitm: %v is not a loopback address", dst)
	}
	_, err := s.conn.WriteToUDPAddrPort(b, dst)
	if err == nil {
		s.mu.Lock()
		s.sent.Datagrams++
		s.sent.Octets += uint64(len(b))
		s.mu.Unlock()
	}
	return err
}

// Received returns the datagrams recorded so far, in order.
func (s *Socket) Received() []Datagram {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.snapshot()
}

// Counts returns what the socket sent and received (Datagrams, Octets;
// Unrecorded for datagrams received beyond MaxRecorded or while
// recording was off).
func (s *Socket) Counts() (sent, received Counts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent, s.recv
}

// Close stops the socket's goroutine and closes it.
func (s *Socket) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.conn.Close()
		s.wg.Wait()
	})
	return err
}

func (s *Socket) loop() {
	defer s.wg.Done()
	readLoop(s.conn, s.receive)
}

// receive counts, records and hands to the handler one datagram.
func (s *Socket) receive(b []byte, from netip.AddrPort) {
	n := len(b)
	d := Datagram{Dir: ToSocket, Time: time.Now(), Src: from, Dst: s.addr}
	s.mu.Lock()
	s.recv.Datagrams++
	s.recv.Octets += uint64(n)
	h := s.handler
	if s.record {
		d.Data = clone(b)
		if !s.rec.add(&d) {
			s.recv.Unrecorded++
		}
	} else {
		d.Seq = s.rec.seq
		s.rec.seq++
		s.recv.Unrecorded++
	}
	s.mu.Unlock()
	if h != nil {
		d.Data = clone(b)
		h(d)
	}
}
