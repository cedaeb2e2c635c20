package netmon

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"
)

// Defaults for the zero values of Options.
const (
	DefaultPoll   = 2 * time.Second
	DefaultSettle = 100 * time.Millisecond
)

// maxSettle bounds, in multiples of Settle, how long a burst of
// notifications that never goes quiet (a flapping link) can hold back a
// re-read: after maxSettle×Settle the addresses are read anyway.
const maxSettle = 10

// Options configure a Monitor. The zero value is ready to use.
type Options struct {
	// Poll is the polling period where there is no netlink (systems other
	// than Linux), or where the netlink notification socket cannot be
	// opened or fails; 0 means DefaultPoll (2 s). It is also the delay
	// before a failed read of the addresses is tried again.
	Poll time.Duration
	// Settle coalesces a burst of notifications (an interface coming up
	// adds several addresses): the addresses are read again, and Changes
	// fires if they differ, once the burst has been quiet this long, or
	// at the latest 10×Settle after it began. 0 means DefaultSettle
	// (100 ms). Polling reports a change at the poll that sees it.
	Settle time.Duration
	// Logger receives the monitor's warnings (a failed read, a fallback to
	// polling) and, at debug level, every change. nil discards them.
	Logger *slog.Logger
}

// Monitor watches this host's usable unicast addresses. Its methods are
// safe for concurrent use.
type Monitor struct {
	poll, settle time.Duration
	log          *slog.Logger
	src          source

	changes chan struct{}
	done    chan struct{} // closed by Close
	wg      sync.WaitGroup

	mu    sync.Mutex
	addrs []netip.Addr // the current set, from usableSet; never modified in place

	closeOnce sync.Once
}

// source is where a Monitor reads addresses and learns that they may have
// changed.
type source struct {
	// read returns every address of the host, usable or not.
	read func() ([]ifAddr, error)
	// notify, if not nil, delivers a message whenever the addresses or
	// the links may have changed; the messages' content does not matter.
	// nil means polling.
	notify notifier
	// close, if not nil, releases what read holds (after the monitor's
	// goroutine has ended).
	close func() error
}

// notifier is a stream of change notifications: on Linux the netlink
// socket that receives RTM_NEWADDR, RTM_DELADDR, RTM_NEWLINK and
// RTM_DELLINK. An *os.File that is pollable has these methods.
type notifier interface {
	// Read blocks until a notification arrives (n > 0, nil), the read
	// deadline passes (an error that is os.ErrDeadlineExceeded),
	// notifications were lost (errOverrun), or the notifier is closed.
	Read(p []byte) (n int, err error)
	SetReadDeadline(t time.Time) error
	// Close makes a Read in progress return.
	Close() error
}

// errOverrun says that the kernel dropped notifications because the
// receive buffer was full (ENOBUFS on a netlink socket): the addresses are
// read again, as after any notification.
var errOverrun = errors.New("netmon: notifications lost (receive buffer overrun)")

// New starts watching the addresses of the network namespace of the
// calling thread and returns once it has read them a first time.
//
// On Linux, New opens its netlink sockets on the calling goroutine's OS
// thread, and a socket belongs to the namespace its thread was in when it
// was opened, for its whole life: the Monitor follows that namespace, not
// the one its goroutine later runs in. To watch another namespace, call
// New from a goroutine locked to a thread switched into it
// (runtime.LockOSThread and setns, as internal/netns's Namespace.Do
// does); the thread may switch back as soon as New returns.
//
// If the notification socket cannot be opened, New falls back to reading
// the addresses through netlink every Options.Poll; if no netlink socket
// can be opened at all, to net.Interfaces every Options.Poll (which reads
// the namespace of whichever thread the monitor's goroutine runs on). On
// other systems it always polls net.Interfaces.
func New(opts Options) (*Monitor, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	return newMonitor(o, openSource(o.Logger))
}

// normalize checks opts and fills in the defaults.
func (opts Options) normalize() (Options, error) {
	if opts.Poll < 0 || opts.Settle < 0 {
		return opts, fmt.Errorf("netmon: negative Poll (%v) or Settle (%v)", opts.Poll, opts.Settle)
	}
	if opts.Poll == 0 {
		opts.Poll = DefaultPoll
	}
	if opts.Settle == 0 {
		opts.Settle = DefaultSettle
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return opts, nil
}

// newMonitor reads the addresses from src once and starts the goroutine
// that keeps them current. opts is normalized. Tests call it with sources
// of their own.
func newMonitor(opts Options, src source) (*Monitor, error) {
	m := &Monitor{
		poll:    opts.Poll,
		settle:  opts.Settle,
		log:     opts.Logger,
		src:     src,
		changes: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	list, err := src.read()
	if err != nil {
		err = fmt.Errorf("netmon: reading the addresses: %w", err)
		return nil, errors.Join(err, m.release())
	}
	m.addrs = usableSet(list)
	m.log.Debug("netmon: watching", "addrs", m.addrs, "polling", src.notify == nil)
	m.wg.Add(1)
	go m.run()
	return m, nil
}

// Addrs returns the current usable unicast addresses: no loopback,
// link-local, multicast or unspecified address; none that is tentative,
// failed duplicate address detection, or is deprecated (on Linux); only
// those of interfaces that are up and running. They are sorted IPv4 first,
// then by value (netip.Addr.Compare), without duplicates. The slice is new
// on every call: the caller may keep and modify it.
func (m *Monitor) Addrs() []netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.addrs)
}

// Changes returns a channel that receives after the set that Addrs returns
// has changed. It has capacity 1 and the monitor never blocks on it, so
// several changes while nobody receives are reported once: after a
// receive, call Addrs for the current set. It is never closed.
func (m *Monitor) Changes() <-chan struct{} { return m.changes }

// Close stops the monitor's goroutine, waits for it to end and releases
// its sockets. Changes receives nothing afterwards and Addrs keeps the last
// set. Calling Close again does nothing and returns nil.
func (m *Monitor) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.release()
	})
	return err
}

// release unblocks and waits for the goroutine, if it was started, then
// closes the source.
func (m *Monitor) release() error {
	var errs []error
	if m.src.notify != nil {
		// The goroutine closes the notifier itself when it falls back to
		// polling: a second close is not an error here.
		if err := m.src.notify.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	m.wg.Wait()
	if m.src.close != nil {
		errs = append(errs, m.src.close())
	}
	return errors.Join(errs...)
}

// stopped reports whether Close has been called.
func (m *Monitor) stopped() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// refresh reads the addresses again and, if the usable set differs from
// the current one, replaces it and signals Changes.
func (m *Monitor) refresh() error {
	list, err := m.src.read()
	if err != nil {
		return err
	}
	set := usableSet(list)
	m.mu.Lock()
	changed := !sameSet(set, m.addrs)
	if changed {
		m.addrs = set
	}
	m.mu.Unlock()
	if changed {
		m.log.Debug("netmon: addresses changed", "addrs", set)
		select {
		case m.changes <- struct{}{}:
		default: // a signal is pending already
		}
	}
	return nil
}
