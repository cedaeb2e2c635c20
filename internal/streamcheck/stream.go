package streamcheck

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultChunk    = 1024
	DefaultInterval = 10 * time.Millisecond // with DefaultChunk, a steady 100 kB/s
	DefaultLinger   = 5 * time.Second
)

// readSize is the buffer of the reading sides.
const readSize = 32 << 10

// Echo serves c: it writes back everything it reads from c, until EOF or
// an error, in the caller's goroutine. At EOF it half-closes c if it can
// (CloseWrite), so that the other side sees the end too, and returns nil;
// otherwise it returns the error. It does not close c.
func Echo(c net.Conn) error {
	buf := make([]byte, readSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				return cw.CloseWrite()
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Config is how a Checker writes. The zero value is a steady 100 kB/s.
type Config struct {
	Chunk    int           // octets per write; 0: DefaultChunk
	Interval time.Duration // between writes; 0: DefaultInterval; < 0: back to back
	Linger   time.Duration // how long Stop waits for the echo of what was written; 0: DefaultLinger
}

// Report is what a Checker saw.
type Report struct {
	Written, Echoed int64 // octets written, and read back
	Mismatch        int64 // offset of the first octet read back wrong; -1 if none
	Err             error // the first read or write error (io.EOF if the echo ended the stream), if any

	// LongestGap is the longest time between two successive reads of
	// echoed data (or between a write and the first read after it, if
	// everything written before had come back) while written data was
	// outstanding; one still running at Snapshot or Stop counts up to
	// then. GapAt is when it began.
	LongestGap time.Duration
	GapAt      time.Time
}

// Lost is how many octets written did not come back: once stopped, what
// the stream lost.
func (r Report) Lost() int64 { return r.Written - r.Echoed }

func (r Report) String() string {
	s := fmt.Sprintf("wrote %d octets, %d echoed (lost %d)", r.Written, r.Echoed, r.Lost())
	if r.Mismatch >= 0 {
		s += fmt.Sprintf(", first wrong octet at %d", r.Mismatch)
	}
	s += fmt.Sprintf(", longest gap %v", r.LongestGap.Round(time.Millisecond))
	if !r.GapAt.IsZero() {
		s += " from " + r.GapAt.Format("15:04:05.000")
	}
	if r.Err != nil {
		s += fmt.Sprintf(", error: %v", r.Err)
	}
	return s
}

// Check returns an error describing what went wrong, if anything did: an
// octet read back wrong, an error, octets lost, or a gap longer than
// maxGap (if maxGap > 0). Use it on the Report of Stop.
func (r Report) Check(maxGap time.Duration) error {
	if r.Mismatch >= 0 || r.Err != nil || r.Lost() != 0 || maxGap > 0 && r.LongestGap > maxGap {
		return fmt.Errorf("stream echo: %v", r)
	}
	return nil
}

// Checker writes a pattern on a connection to an echo and checks what
// comes back: see Start.
type Checker struct {
	c   net.Conn
	cfg Config
	run runner

	mu       sync.Mutex
	written  int64
	writing  bool // a write is under way: its octets are outstanding too
	echoed   int64
	mismatch int64
	err      error
	since    time.Time // when the current wait for echoed data began
	longest  time.Duration
	gapAt    time.Time
	finished bool // the writer ended: the reader ends once it has everything
	forced   bool // Stop unblocked the goroutines: errors are its own
	ended    time.Time

	stopOnce sync.Once
	final    Report
}

// Start writes Pattern on c, cfg.Chunk octets every cfg.Interval, and
// reads the echo back, comparing every octet, in two goroutines, until
// Stop. The caller keeps c: Stop does not close it.
func Start(c net.Conn, cfg Config) *Checker {
	if cfg.Chunk <= 0 {
		cfg.Chunk = DefaultChunk
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Linger <= 0 {
		cfg.Linger = DefaultLinger
	}
	k := &Checker{c: c, cfg: cfg, run: newRunner(), mismatch: -1}
	go k.write()
	go k.read()
	return k
}

// Snapshot reports what the Checker saw so far.
func (k *Checker) Snapshot() Report {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.report(time.Now())
}

// Stop stops writing, waits up to cfg.Linger for the echo of everything
// written, stops reading (setting c's deadlines to do so, and clearing
// them after) and returns the Report. Further calls return the same.
func (k *Checker) Stop() Report {
	k.stopOnce.Do(func() {
		k.run.halt(k.c, k.cfg.Linger, func() bool {
			k.mu.Lock()
			defer k.mu.Unlock()
			k.finished = true
			return k.echoed >= k.written
		}, func() {
			k.mu.Lock()
			k.forced = true
			// A gap running now, a write blocked included, ends here.
			r := k.report(time.Now())
			k.longest, k.gapAt = r.LongestGap, r.GapAt
			k.mu.Unlock()
		})
		k.mu.Lock()
		k.final = k.report(k.ended)
		k.mu.Unlock()
	})
	return k.final
}

// report is the Report at now, a gap still running counted up to then;
// k.mu is held.
func (k *Checker) report(now time.Time) Report {
	r := Report{Written: k.written, Echoed: k.echoed, Mismatch: k.mismatch, Err: k.err,
		LongestGap: k.longest, GapAt: k.gapAt}
	if (k.echoed < k.written || k.writing) && !k.since.IsZero() && now.Sub(k.since) > r.LongestGap {
		r.LongestGap, r.GapAt = now.Sub(k.since), k.since
	}
	return r
}

// fail notes the first error, unless Stop caused it.
func (k *Checker) fail(what string, off int64, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err == nil && !k.forced {
		k.err = fmt.Errorf("streamcheck: %s at octet %d: %w", what, off, err)
	}
}

func (k *Checker) write() {
	defer close(k.run.wdone)
	var tick <-chan time.Time
	if k.cfg.Interval > 0 {
		t := time.NewTicker(k.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	buf := make([]byte, k.cfg.Chunk)
	var off int64
	for first := true; ; first = false {
		select {
		case <-k.run.stop:
			return
		default:
		}
		if !first && tick != nil {
			select {
			case <-k.run.stop:
				return
			case <-tick:
			}
		}
		Pattern(buf, off)
		k.mu.Lock()
		if k.echoed >= k.written {
			k.since = time.Now() // everything came back: a new wait begins
		}
		k.writing = true
		k.mu.Unlock()
		n, err := k.c.Write(buf)
		off += int64(n)
		k.mu.Lock()
		k.written, k.writing = off, false
		k.mu.Unlock()
		if err != nil {
			k.fail("write", off, err)
			return
		}
	}
}

func (k *Checker) read() {
	defer close(k.run.rdone)
	buf := make([]byte, readSize)
	want := make([]byte, readSize)
	var off int64 // k.echoed, which only this goroutine changes
	bad := int64(-1)
	for {
		n, err := k.c.Read(buf)
		now := time.Now()
		if n > 0 {
			if bad < 0 {
				Pattern(want[:n], off)
				for i := range n {
					if buf[i] != want[i] {
						bad = off + int64(i)
						break
					}
				}
			}
			off += int64(n)
			k.mu.Lock()
			k.echoed = off
			if off > k.written {
				// The echo of a write still in progress came back before
				// its Write returned (a pipe does that): those octets were
				// written, whatever the writer has recorded yet.
				k.written = off
			}
			k.mismatch = bad
			if gap := now.Sub(k.since); !k.since.IsZero() && gap > k.longest {
				k.longest, k.gapAt = gap, k.since
			}
			k.since = now
			done := k.finished && k.echoed >= k.written
			if done {
				k.ended = now
			}
			k.mu.Unlock()
			if done {
				return
			}
		}
		if err != nil {
			k.fail("read", off, err)
			k.mu.Lock()
			k.ended = now
			k.mu.Unlock()
			return
		}
	}
}
