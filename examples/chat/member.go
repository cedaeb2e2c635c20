package main

import (
	"bufio"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"time"

	"hipnet.dev/hipnet"
)

// Timers of a member's connection.
const (
	// dialTimeout bounds one dial, base exchange (and waiting for a first
	// relay registration) included.
	dialTimeout = 30 * time.Second
	// backoffMin and backoffMax bound the wait between dials; it doubles
	// after every failure and has jitter, so that peers restarted together
	// do not dial in step.
	backoffMin = 250 * time.Millisecond
	backoffMax = 30 * time.Second
	// stableAfter is how long a dialled stream must have lasted for the
	// next dial to start again from backoffMin.
	stableAfter = 10 * time.Second
	// writeTimeout bounds one line's write: a stream that takes longer is
	// taken for broken and the line goes on another.
	writeTimeout = 10 * time.Second
	// maxQueue is the number of lines queued for one peer at most; past
	// it, the oldest is dropped.
	maxQueue = 1000
)

// member is one peer in the chat: the lines queued for it and its
// streams. Its fields after wake are guarded by chat.mu.
type member struct {
	hit  hipnet.HIT
	name string
	dial bool          // named by -peer: dialled and kept connected
	wake chan struct{} // (capacity 1) the writer has something to look at

	outbox   []string // lines not yet written, oldest first
	writing  bool     // the writer is writing outbox[0]
	dropped  int      // lines dropped from the full outbox, not yet reported
	dialed   *stream  // the stream this side dialled, if up
	accepted []*stream
}

// stream is one chat stream with a member, read by its own goroutine.
type stream struct {
	conn   net.Conn
	since  time.Time
	broken bool          // a write failed: not to be written again (chat.mu)
	done   chan struct{} // closed when its reader has returned
}

// poke wakes the member's writer.
func (m *member) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// connected reports whether the member has a stream. chat.mu is held.
func (m *member) connected() bool { return m.dialed != nil || len(m.accepted) > 0 }

// sendStream is the stream lines go on: the dialled one, else the latest
// the peer dialled; nil if none works. chat.mu is held.
func (m *member) sendStream() *stream {
	if m.dialed != nil && !m.dialed.broken {
		return m.dialed
	}
	for _, s := range slices.Backward(m.accepted) {
		if !s.broken {
			return s
		}
	}
	return nil
}

// pending reports whether lines wait for a member that can still get them:
// one that is dialled, or a contact that is connected. chat.mu is held.
func (m *member) pending() bool {
	return m.writing || (len(m.outbox) > 0 && (m.dial || m.connected()))
}

// dialLoop keeps a stream dialled to m until the chat stops.
func (c *chat) dialLoop(m *member) {
	defer c.wg.Done()
	addr := (&hipnet.Addr{HIT: m.hit, Port: c.port}).String()
	var b backoff
	lastErr := ""
	for {
		ctx, cancel := context.WithTimeout(c.ctx, dialTimeout)
		conn, err := c.node.DialContext(ctx, "tcp", addr)
		cancel()
		if c.ctx.Err() != nil {
			if conn != nil {
				conn.Close()
			}
			return
		}
		if err != nil {
			// "dial tcp [HIT]:port: " (twice, as hipnet nests them) says
			// nothing the name does not.
			for oe, ok := err.(*net.OpError); ok; oe, ok = err.(*net.OpError) {
				err = oe.Err
			}
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				c.out.notice("cannot reach %s: %v (trying again)", m.name, err)
			}
			if !sleep(c.ctx, b.next()) {
				return
			}
			continue
		}
		lastErr = ""
		s := c.addStream(m, conn, true)
		if s == nil {
			return
		}
		select {
		case <-s.done:
		case <-c.ctx.Done():
			return
		}
		if time.Since(s.since) >= stableAfter {
			b = backoff{}
		}
		if !sleep(c.ctx, b.next()) {
			return
		}
	}
}

// writeLoop writes m's queued lines, one at a time, on its send stream,
// until the chat stops.
func (c *chat) writeLoop(m *member) {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		s := m.sendStream()
		ready := s != nil && len(m.outbox) > 0
		var line string
		if ready {
			line = m.outbox[0]
			m.writing = true
		}
		c.mu.Unlock()
		if !ready {
			select {
			case <-m.wake:
				continue
			case <-c.ctx.Done():
				return
			}
		}

		s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := io.WriteString(s.conn, line+"\n")
		c.mu.Lock()
		m.writing = false
		if err == nil {
			m.outbox[0] = ""
			m.outbox = m.outbox[1:]
		} else {
			s.broken = true // the line stays queued for the next stream
		}
		c.changedLocked()
		c.mu.Unlock()
		if err != nil {
			s.conn.Close() // its reader ends and lets go of it
		}
	}
}

// readLoop prints the lines of one stream until it ends, then drops it.
func (c *chat) readLoop(m *member, s *stream) {
	defer c.readers.Done()
	defer close(s.done)
	br := bufio.NewReader(s.conn)
	for {
		line, _, err := readLine(br)
		// A last line cut short by an error rather than io.EOF is not shown:
		// its sender will send it again on another stream.
		if (err == nil || err == io.EOF) && strings.TrimSpace(line) != "" {
			c.out.message(m.name, clean(line))
		}
		if err != nil {
			break
		}
	}
	c.dropStream(m, s)
}

// backoff is the exponential wait between dials: backoffMin, doubling up
// to backoffMax, each drawn uniformly from its upper half. The zero value
// starts at backoffMin.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	b.d = min(max(2*b.d, backoffMin), backoffMax)
	return b.d/2 + rand.N(b.d/2+1)
}

// sleep waits d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
