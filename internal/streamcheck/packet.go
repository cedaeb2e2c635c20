package streamcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"
)

// Defaults and bounds of ProbeConfig.
const (
	DefaultProbeSize   = 64
	MinProbeSize       = 16 // the probe's number and the datagram's sequence number
	DefaultProbeLinger = time.Second
)

// EchoPackets serves pc: it sends every datagram it reads back to its
// sender, until a read fails (net.ErrClosed once the caller closes pc),
// and returns that error. Send errors (an unreachable sender) are not its
// concern: it reads on.
func EchoPackets(pc net.PacketConn) error {
	buf := make([]byte, 1<<16)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

// ProbeConfig is how a PacketProbe sends. The zero value sends 64 octets
// every 10 ms.
type ProbeConfig struct {
	Size     int           // octets per datagram, at least MinProbeSize; 0: DefaultProbeSize
	Interval time.Duration // between datagrams; 0: DefaultInterval; < 0: back to back
	Linger   time.Duration // how long Stop waits for the last echo; 0: DefaultProbeLinger
}

// ProbeReport is what a PacketProbe saw.
type ProbeReport struct {
	Sent       int64 // datagrams sent
	Received   int64 // distinct datagrams echoed back intact
	Duplicates int64 // echoes of a datagram already received
	Reordered  int64 // echoes that came after that of a datagram sent later
	Corrupt    int64 // datagrams read that are no intact echo of one sent: wrong length, probe, number or contents
	Err        error // the first send or receive error, if any: the probe went on

	// LongestGap is the longest time between two successive echoes
	// received (or between a send and the first echo after it, if every
	// datagram sent before had come back) while the echo of the last
	// datagram sent was outstanding; one still running at Snapshot or Stop
	// counts up to then. GapAt is when it began.
	LongestGap time.Duration
	GapAt      time.Time
}

// Lost is how many datagrams sent did not come back: once stopped, what
// the path lost.
func (r ProbeReport) Lost() int64 { return r.Sent - r.Received }

func (r ProbeReport) String() string {
	s := fmt.Sprintf("sent %d datagrams, %d echoed (lost %d, %d duplicated, %d reordered, %d corrupt), longest gap %v",
		r.Sent, r.Received, r.Lost(), r.Duplicates, r.Reordered, r.Corrupt, r.LongestGap.Round(time.Millisecond))
	if !r.GapAt.IsZero() {
		s += " from " + r.GapAt.Format("15:04:05.000")
	}
	if r.Err != nil {
		s += fmt.Sprintf(", first error: %v", r.Err)
	}
	return s
}

// PacketProbe sends numbered datagrams to an echo and counts what comes
// back: see StartProbe.
type PacketProbe struct {
	send func([]byte) (int, error)
	recv func([]byte) (int, error)
	conn deadliner
	cfg  ProbeConfig
	id   uint64 // tells this probe's datagrams from strays
	run  runner

	mu       sync.Mutex
	sent     int64
	got      []uint64 // bit n: datagram n came back
	received int64
	dups     int64
	reorder  int64
	corrupt  int64
	next     int64 // one past the highest number echoed
	err      error
	since    time.Time // when the current wait for an echo began
	longest  time.Duration
	gapAt    time.Time
	finished bool // the sender ended: the reader ends once the last echo came
	forced   bool // Stop unblocked the goroutines: errors are its own
	ended    time.Time

	stopOnce sync.Once
	final    ProbeReport
}

// StartProbe sends a datagram of cfg.Size octets every cfg.Interval on c,
// a connected datagram socket (net.DialUDP, say) to an echo, and reads the
// echoes back, in two goroutines, until Stop. Each datagram carries the
// probe's random number, its sequence number and Pattern octets that
// depend on both. The caller keeps c: Stop does not close it.
func StartProbe(c net.Conn, cfg ProbeConfig) *PacketProbe {
	return startProbe(c.Write, c.Read, c, cfg)
}

// StartPacketProbe is StartProbe on pc, an unconnected socket, sending to
// the echo at to. It reads every datagram that arrives at pc, from
// wherever.
func StartPacketProbe(pc net.PacketConn, to net.Addr, cfg ProbeConfig) *PacketProbe {
	send := func(b []byte) (int, error) { return pc.WriteTo(b, to) }
	recv := func(b []byte) (int, error) {
		n, _, err := pc.ReadFrom(b)
		return n, err
	}
	return startProbe(send, recv, pc, cfg)
}

func startProbe(send, recv func([]byte) (int, error), c deadliner, cfg ProbeConfig) *PacketProbe {
	if cfg.Size == 0 {
		cfg.Size = DefaultProbeSize
	}
	cfg.Size = max(cfg.Size, MinProbeSize)
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Linger <= 0 {
		cfg.Linger = DefaultProbeLinger
	}
	p := &PacketProbe{send: send, recv: recv, conn: c, cfg: cfg, id: rand.Uint64(), run: newRunner()}
	go p.write()
	go p.read()
	return p
}

// Snapshot reports what the probe saw so far.
func (p *PacketProbe) Snapshot() ProbeReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.report(time.Now())
}

// Stop stops sending, waits up to cfg.Linger for the echo of the last
// datagram sent, stops reading (setting the socket's deadlines to do so,
// and clearing them after) and returns the report. Further calls return
// the same.
func (p *PacketProbe) Stop() ProbeReport {
	p.stopOnce.Do(func() {
		p.run.halt(p.conn, p.cfg.Linger, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.finished = true
			return p.next >= p.sent
		}, func() {
			p.mu.Lock()
			p.forced = true
			// A gap running now, a write blocked included, ends here.
			r := p.report(time.Now())
			p.longest, p.gapAt = r.LongestGap, r.GapAt
			p.mu.Unlock()
		})
		p.mu.Lock()
		p.final = p.report(p.ended)
		p.mu.Unlock()
	})
	return p.final
}

// report is the report at now, a gap still running counted up to then;
// p.mu is held.
func (p *PacketProbe) report(now time.Time) ProbeReport {
	r := ProbeReport{Sent: p.sent, Received: p.received, Duplicates: p.dups, Reordered: p.reorder,
		Corrupt: p.corrupt, Err: p.err, LongestGap: p.longest, GapAt: p.gapAt}
	if p.next < p.sent && !p.since.IsZero() && now.Sub(p.since) > r.LongestGap {
		r.LongestGap, r.GapAt = now.Sub(p.since), p.since
	}
	return r
}

// fail notes the first error, unless Stop caused it, and reports whether
// the goroutine that saw it should end: Stop caused it, or the socket is
// closed, past its deadline or at its end. Other errors (an ICMP
// unreachable while the path is down) are the path's, and pass.
func (p *PacketProbe) fail(what string, seq int64, err error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.forced {
		return true
	}
	if p.err == nil {
		p.err = fmt.Errorf("streamcheck: %s at datagram %d: %w", what, seq, err)
	}
	return errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, io.EOF)
}

// fill writes datagram seq of the probe into b.
func (p *PacketProbe) fill(b []byte, seq int64) {
	binary.BigEndian.PutUint64(b, p.id)
	binary.BigEndian.PutUint64(b[8:], uint64(seq))
	Pattern(b[MinProbeSize:], int64(p.id>>1)+seq*int64(len(b)))
}

func (p *PacketProbe) write() {
	defer close(p.run.wdone)
	var tick <-chan time.Time
	if p.cfg.Interval > 0 {
		t := time.NewTicker(p.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	buf := make([]byte, p.cfg.Size)
	for seq, first := int64(0), true; ; first = false {
		select {
		case <-p.run.stop:
			return
		default:
		}
		if !first && tick != nil {
			select {
			case <-p.run.stop:
				return
			case <-tick:
			}
		}
		p.fill(buf, seq)
		p.mu.Lock()
		if p.next >= p.sent {
			p.since = time.Now() // every echo came back: a new wait begins
		}
		p.sent = seq + 1 // before the echo can come
		p.mu.Unlock()
		if _, err := p.send(buf); err != nil {
			p.mu.Lock()
			p.sent = seq
			p.mu.Unlock()
			if p.fail("send", seq, err) {
				return
			}
			continue
		}
		seq++
	}
}

func (p *PacketProbe) read() {
	defer close(p.run.rdone)
	buf := make([]byte, 1<<16)
	want := make([]byte, p.cfg.Size)
	for {
		n, err := p.recv(buf)
		now := time.Now()
		if err != nil {
			if p.fail("receive", -1, err) {
				p.mu.Lock()
				p.ended = now
				p.mu.Unlock()
				return
			}
			time.Sleep(time.Millisecond) // not a busy loop on a path that keeps refusing
			continue
		}
		seq := int64(-1)
		if n == len(want) {
			seq = int64(binary.BigEndian.Uint64(buf[8:]))
			p.fill(want, seq)
			if string(buf[:n]) != string(want) {
				seq = -1
			}
		}
		if p.note(seq, now) {
			return
		}
	}
}

// note counts the datagram numbered seq (-1: corrupt) read at now, and
// reports whether the reader is done.
func (p *PacketProbe) note(seq int64, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case seq < 0 || seq >= p.sent:
		p.corrupt++
	case int(seq>>6) < len(p.got) && p.got[seq>>6]&(1<<(seq&63)) != 0:
		p.dups++
	default:
		for int(seq>>6) >= len(p.got) {
			p.got = append(p.got, 0)
		}
		p.got[seq>>6] |= 1 << (seq & 63)
		p.received++
		if seq < p.next {
			p.reorder++
		} else {
			p.next = seq + 1
		}
		if gap := now.Sub(p.since); !p.since.IsZero() && gap > p.longest {
			p.longest, p.gapAt = gap, p.since
		}
		p.since = now
	}
	done := p.finished && p.next >= p.sent
	if done {
		p.ended = now
	}
	return done
}
