package streams

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"hipnet.dev/overlay"
)

// Optimistic open. Dial sends the stream header and returns; the server's
// one-octet answer (stream.go) comes a round trip later. A goroutine per
// dialed stream (readAnswer) reads it, with no deadline: the application's
// read deadline must not cut it short, and the stream, closed by Close or
// with its connection, bounds it. Read and Write wait for it (answer.wait)
// under their own deadlines.
//
// Before the answer, the stream may be retried on another connection, as
// Dial retries (retryable): the peer closed the connection before it got
// to the stream, or the connection turned out dead. The retry opens a new
// stream, sends the header again and waits for the new answer, the conn
// unchanged for the application. What the application wrote meanwhile
// decides whether that is possible (retryAllowed):
//
//   - Nothing written: the retry is free.
//   - A first Write waiting for the answer still holds its buffer, and
//     writes it again on the new stream, but only when the peer's close
//     proves no listener saw the data (undelivered). A connection that
//     died may have delivered it; writing it again could deliver it twice.
//   - Data on the stream that no caller holds any more (a Write returned
//     at its deadline before the answer, or CloseWrite): no retry, the
//     error is reported.
//
// A refusal is final: the stream is reset, the hold on the connection
// released, and every Read and Write returns the error.

// answer is the state of a dialed stream's answer. done and settled mark
// the end; err is then fixed. The rest is guarded by the conn's mu.
type answer struct {
	done    chan struct{}
	settled atomic.Bool
	err     error // nil: accepted

	gen        int           // the stream's generation: a retry makes a new one
	swapped    chan struct{} // closed (and replaced) when gen changes
	redialing  bool          // between streams: nothing to send on
	inHand     bool          // a Write waits for the answer holding its buffer
	sent       bool          // data or FIN on the stream that no caller holds
	readClosed bool          // CloseRead came first: done once answered
	rdl, wdl   time.Time     // the application's deadlines
	rd, wd     deadlineT     // wake Read and Write waiting for the answer
	cancel     context.CancelFunc
}

// newDialedConn makes the conn of a stream Dial opened on qc (with
// Dial's hold on qc) and starts reading its answer.
func (m *Manager) newDialedConn(qc *qconn, st *quic.Stream, port, src int, dialed bool, attempt int) (*conn, error) {
	c := m.newConn(qc, st, &overlay.Addr{HIT: m.local, Port: src}, &overlay.Addr{HIT: qc.peer, Port: port})
	c.ans = &answer{done: make(chan struct{}), swapped: make(chan struct{})}
	c.ans.rd.Init()
	c.ans.wd.Init()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		abortStream(st)
		m.release(qc)
		return nil, errClosed
	}
	m.wg.Add(1)
	m.mu.Unlock()
	go c.readAnswer(dialed, attempt)
	return c, nil
}

// wait waits for the answer, or for d's deadline.
func (a *answer) wait(d *deadlineT) error {
	if a.settled.Load() {
		return a.err
	}
	select {
	case <-a.done:
		return a.err
	case <-d.Wait():
		return os.ErrDeadlineExceeded
	}
}

// settleLocked fixes the answer, wakes whoever waits for it and ends a
// retry in progress; the conn's mu is held.
func (a *answer) settleLocked(err error) {
	a.err = err
	a.redialing = false
	if a.cancel != nil {
		a.cancel()
		a.cancel = nil
	}
	a.settled.Store(true)
	close(a.done)
	a.rd.Set(time.Time{}) // stop the timers
	a.wd.Set(time.Time{})
}

// readAnswer reads the answer of c's stream, moving it to another stream
// while retryAfter allows, and settles it.
func (c *conn) readAnswer(dialed bool, attempt int) {
	defer c.m.wg.Done()
	for {
		err := readAnswerOctet(c.stream())
		if err == nil {
			c.settle(nil)
			return
		}
		if dialed, err = c.retryAfter(err, dialed, &attempt); err != nil {
			c.settle(err)
			return
		}
	}
}

// retryAfter moves c to a new stream after its stream failed with err, as
// Dial would (retryable, maxDialAttempts) and as the application's writes
// allow (retryAllowed). It returns nil once the new stream's header is
// sent, or the error to settle with.
func (c *conn) retryAfter(err error, dialed bool, attempt *int) (bool, error) {
	for {
		err = c.m.whyEnded(err, c.remote.HIT)
		if *attempt >= maxDialAttempts || !retryable(err, dialed) || !c.startRetry(err) {
			return dialed, err
		}
		*attempt++
		c.m.log.Debug("streams: retrying dial", "peer", c.remote.HIT, "port", c.remote.Port, "err", err)
		var final bool
		if dialed, final, err = c.retry(); err == nil || final {
			return dialed, err
		}
	}
}

func (c *conn) stream() *quic.Stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func readAnswerOctet(st *quic.Stream) error {
	var ans [1]byte
	if _, err := io.ReadFull(st, ans[:]); err != nil {
		return err
	}
	switch ans[0] {
	case answerAccepted:
		return nil
	case answerRefused:
		return overlay.ErrRefused
	}
	return fmt.Errorf("streams: bad answer %d to the stream header", ans[0])
}

// retryAllowed reports whether what the application wrote lets the stream
// be retried after err (see the top of this file). The conn's mu is held.
func (a *answer) retryAllowed(err error) bool {
	return !a.settled.Load() && !a.sent && (!a.inHand || undelivered(err))
}

// startRetry gives up c's stream for a retry, if retryAllowed: it resets
// the stream and releases the hold on its connection, which failed (every
// error retryable allows is the connection's).
func (c *conn) startRetry(err error) bool {
	c.mu.Lock()
	a := c.ans
	if !a.retryAllowed(err) {
		c.mu.Unlock()
		return false
	}
	a.redialing = true
	st, qc := c.st, c.qc
	c.qc = nil
	c.mu.Unlock()
	abortStream(st)
	if qc != nil {
		c.m.failConn(qc, err)
		c.m.release(qc)
	}
	return true
}

// retry opens a new stream for c, on the current connection with the
// peer or a new one, and sends the header again. final reports an error
// that no further retry can help: the connection could not be had (as
// Dial, which does not retry that either), or the conn was closed.
func (c *conn) retry() (dialed, final bool, err error) {
	ctx, cancel := context.WithTimeout(c.m.ctx, dialTimeout)
	defer cancel()
	c.mu.Lock()
	if c.ans.settled.Load() {
		c.mu.Unlock()
		return false, true, errClosed
	}
	c.ans.cancel = cancel // Close ends the retry
	c.mu.Unlock()

	qc, dialed, err := c.m.conn(ctx, c.remote.HIT, nil)
	if err != nil {
		return dialed, true, err
	}
	st, err := c.m.openStream(ctx, qc, c.remote.Port, c.local.Port)
	if err != nil {
		if err = c.m.whyEnded(err, c.remote.HIT); retryable(err, dialed) {
			c.m.failConn(qc, err)
		}
		c.m.release(qc)
		return dialed, false, err
	}
	c.mu.Lock()
	a := c.ans
	if a.settled.Load() { // closed meanwhile
		c.mu.Unlock()
		abortStream(st)
		c.m.release(qc)
		return dialed, true, errClosed
	}
	c.st, c.qc = st, qc
	st.SetWriteDeadline(a.wdl)
	a.redialing = false
	a.cancel = nil
	a.gen++
	close(a.swapped)
	a.swapped = make(chan struct{})
	c.mu.Unlock()
	return dialed, false, nil
}

// settle ends the wait for the answer with err (nil: accepted), unless
// Close did first. A failed stream is reset and its hold released at
// once: the application may never Close it.
func (c *conn) settle(err error) {
	c.mu.Lock()
	a := c.ans
	if a.settled.Load() {
		c.mu.Unlock()
		return
	}
	var (
		st *quic.Stream
		qc *qconn
	)
	if err != nil {
		st, qc = c.st, c.qc
		c.qc = nil
	} else {
		c.st.SetReadDeadline(a.rdl)
		if a.readClosed {
			c.st.CancelRead(streamCodeClosed)
		}
	}
	a.settleLocked(err)
	c.mu.Unlock()
	if st != nil {
		abortStream(st)
	}
	if qc != nil {
		c.m.release(qc)
	}
}

// sendStream returns the stream to send on. Before the answer it waits
// out a retry in progress (under the write deadline) and marks what the
// caller is about to send: inHand, a Write that will wait for the answer
// and can resend on a new stream (gen and swapped tell it when to);
// otherwise data nobody can send again. gen is -1 once the answer is in:
// the stream is then the final one, or err says why there is none.
func (c *conn) sendStream(inHand bool) (st *quic.Stream, gen int, swapped <-chan struct{}, err error) {
	a := c.ans
	for {
		c.mu.Lock()
		if a.settled.Load() {
			c.mu.Unlock()
			return c.st, -1, nil, a.err
		}
		if !a.redialing {
			if inHand {
				a.inHand = true
			} else {
				a.sent = true
			}
			st, gen, swapped = c.st, a.gen, a.swapped
			c.mu.Unlock()
			return st, gen, swapped, nil
		}
		sw := a.swapped
		c.mu.Unlock()
		select {
		case <-a.done:
		case <-sw:
		case <-a.wd.Wait():
			return nil, 0, nil, os.ErrDeadlineExceeded
		}
	}
}

// writePending is Write before the answer: b goes out at once, after the
// header, and Write waits for the answer (or its deadline, or Close). If
// a retry moved the stream meanwhile, b is written again on the new one.
func (c *conn) writePending(b []byte) (int, error) {
	a := c.ans
	for {
		st, gen, swapped, err := c.sendStream(true)
		if err != nil {
			return 0, c.opErr("write", err)
		}
		if gen < 0 {
			return c.write(b)
		}
		n, werr := st.Write(b)
		select {
		case <-a.done:
		case <-swapped:
		case <-a.wd.Wait():
		}
		c.mu.Lock()
		a.inHand = false
		moved := a.gen != gen
		settled := a.settled.Load()
		if !moved && !settled {
			a.sent = true // we return, the data stays on the stream
		}
		c.mu.Unlock()
		switch {
		case moved:
			continue
		case !settled:
			if werr == nil {
				werr = os.ErrDeadlineExceeded
			}
			return n, c.opErr("write", werr)
		case a.err != nil:
			return 0, c.opErr("write", a.err)
		case werr != nil:
			return n, c.opErr("write", werr)
		}
		return n, nil
	}
}
