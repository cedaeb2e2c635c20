package netmon

import (
	"fmt"
	"testing"
	"time"
)

// A notification makes the monitor read the addresses again after Settle;
// Changes fires when, and only when, the set differs.
func TestWatchReadsAgainAfterNotification(t *testing.T) {
	src := newFakeSource("10.250.0.1")
	n := newFakeNotifier()
	m := start(t, Options{Settle: 20 * time.Millisecond, Poll: time.Hour}, src, n)
	if got, want := m.Addrs(), addrs("10.250.0.1"); !sameSet(got, want) {
		t.Fatalf("Addrs after New = %v, want %v", got, want)
	}

	src.set("10.250.0.1", "fd00:250::1")
	expectNoChange(t, m, 100*time.Millisecond, addrs("10.250.0.1"), "a change without a notification (no polling)")
	n.notify(nil)
	expectChange(t, m, time.Second, addrs("10.250.0.1", "fd00:250::1"), "after a notification")

	// A notification that changes nothing in the usable set: the address
	// list is read, Changes stays quiet.
	before := src.readCount()
	src.setList([]ifAddr{up("10.250.0.1"), up("fd00:250::1"), up("fe80::1"), {Addr: addrs("10.250.0.2")[0]}})
	n.notify(nil)
	src.waitReads(t, before)
	expectNoChange(t, m, 100*time.Millisecond, addrs("10.250.0.1", "fd00:250::1"), "an unusable address added")
}

// ENOBUFS (errOverrun) alone, without any notification read, makes the
// monitor read again: the lost notifications may have said anything.
func TestWatchOverrunReadsAgain(t *testing.T) {
	src := newFakeSource("10.250.0.1")
	n := newFakeNotifier()
	m := start(t, Options{Settle: 20 * time.Millisecond, Poll: time.Hour}, src, n)
	src.set("10.250.0.2")
	n.notify(fmt.Errorf("%w: ENOBUFS", errOverrun))
	expectChange(t, m, time.Second, addrs("10.250.0.2"), "after an overrun")
	if n.isClosed() {
		t.Fatal("the notifier was closed after an overrun: it should be kept")
	}
	// Notifications still work after it.
	src.set("10.250.0.3")
	n.notify(nil)
	expectChange(t, m, time.Second, addrs("10.250.0.3"), "a notification after the overrun")
}

// A burst of notifications closer together than Settle is one read, and
// Changes fires once.
func TestWatchCoalescesBurst(t *testing.T) {
	src := newFakeSource()
	n := newFakeNotifier()
	m := start(t, Options{Settle: 300 * time.Millisecond, Poll: time.Hour}, src, n)
	before := src.readCount()
	for i := range 20 {
		src.set(fmt.Sprintf("10.250.0.%d", i+1))
		n.notify(nil)
	}
	expectChange(t, m, 2*time.Second, addrs("10.250.0.20"), "after a burst")
	expectNoChange(t, m, 400*time.Millisecond, addrs("10.250.0.20"), "after the burst was reported")
	if got := src.readCount() - before; got != 1 {
		t.Fatalf("a burst of 20 notifications was read %d times, want once", got)
	}
}

// A stream of notifications that never goes quiet for Settle is still
// read after maxSettle×Settle, not held back for as long as it lasts.
func TestWatchBurstLimit(t *testing.T) {
	const settle = 50 * time.Millisecond
	src := newFakeSource()
	n := newFakeNotifier()
	m := start(t, Options{Settle: settle, Poll: time.Hour}, src, n)
	src.set("10.250.0.1")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(settle / 5)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				n.notify(nil)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	// The limit is 500 ms; allow for a slow machine, but stay well under
	// the stream's length.
	expectChange(t, m, maxSettle*settle+time.Second, addrs("10.250.0.1"), "during a stream of notifications")
}

// A notifier that fails for another reason is closed and the monitor
// polls from then on.
func TestWatchFallsBackToPolling(t *testing.T) {
	src := newFakeSource("10.250.0.1")
	n := newFakeNotifier()
	m := start(t, Options{Settle: 20 * time.Millisecond, Poll: 30 * time.Millisecond}, src, n)
	n.notify(errBoom)
	deadline := time.Now().Add(time.Second)
	for !n.isClosed() {
		if time.Now().After(deadline) {
			t.Fatal("the failed notifier was not closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	src.set("10.250.0.2")
	expectChange(t, m, time.Second, addrs("10.250.0.2"), "polling after the notifier failed")
}

// A failed read keeps the current set and is tried again after Poll.
func TestWatchReadErrorRetried(t *testing.T) {
	src := newFakeSource("10.250.0.1")
	n := newFakeNotifier()
	m := start(t, Options{Settle: 20 * time.Millisecond, Poll: 100 * time.Millisecond}, src, n)
	src.setErr(errBoom)
	before := src.readCount()
	n.notify(nil)
	src.waitReads(t, before)
	expectNoChange(t, m, 20*time.Millisecond, addrs("10.250.0.1"), "a failed read")
	src.setErr(nil)
	src.set("10.250.0.2")
	expectChange(t, m, time.Second, addrs("10.250.0.2"), "the retry after a failed read")
}
