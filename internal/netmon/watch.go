package netmon

import (
	"errors"
	"os"
	"time"
)

// run is the monitor's one goroutine: it follows the notifications while
// there are any, and polls otherwise or after they fail, until Close.
func (m *Monitor) run() {
	defer m.wg.Done()
	if m.src.notify != nil && m.watch() {
		return
	}
	m.pollLoop()
}

// watch reads notifications and, once a burst of them has been quiet for
// Settle (or has lasted maxSettle×Settle), reads the addresses again. It
// does not look inside a notification: any message, and a lost one
// (errOverrun), only says "read again", so nothing is missed when messages
// are lost or arrive out of order. It returns true when Close stopped it
// and false when the notifier failed, after closing it, for run to poll.
func (m *Monitor) watch() (closed bool) {
	n := m.src.notify
	buf := make([]byte, 8192) // the content is discarded; a longer message is truncated
	var first, due time.Time  // the burst's first notification; when to read (zero: nothing pending)
	for {
		if err := n.SetReadDeadline(due); err != nil {
			return m.abandon(err)
		}
		_, err := n.Read(buf)
		if m.stopped() {
			return true
		}
		now := time.Now()
		switch {
		case err == nil || errors.Is(err, errOverrun):
			if err != nil {
				m.log.Debug("netmon: notifications lost; reading the addresses again", "err", err)
			}
			if due.IsZero() {
				first = now
			}
			due = now.Add(m.settle)
			if limit := first.Add(maxSettle * m.settle); due.After(limit) {
				due = limit
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			if err := m.refresh(); err != nil {
				m.log.Warn("netmon: reading the addresses failed; trying again", "err", err, "after", m.poll)
				first, due = now, now.Add(m.poll)
				continue
			}
			due = time.Time{}
		default:
			return m.abandon(err)
		}
	}
}

// abandon gives up on the notifier after err: it closes it and returns
// false, for run to poll instead.
func (m *Monitor) abandon(err error) bool {
	if m.stopped() {
		return true // Close closed the notifier under us
	}
	m.log.Warn("netmon: address notifications failed; polling instead", "err", err, "every", m.poll)
	_ = m.src.notify.Close()
	return false
}
