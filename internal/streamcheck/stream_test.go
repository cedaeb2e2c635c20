package streamcheck

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// pipe is a synchronous in-memory connection: net.Pipe.
func pipe(t *testing.T) (client, server net.Conn) {
	client, server = net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// tcp is a TCP connection on loopback.
func tcp(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

var transports = []struct {
	name string
	dial func(*testing.T) (net.Conn, net.Conn)
}{{"pipe", pipe}, {"tcp", tcp}}

// serve runs echo on server and returns what it returned, once it has.
func serve(server net.Conn, echo func(net.Conn) error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- echo(server) }()
	return done
}

// mangled is an echo that hands each read, with its offset in the stream,
// to f before writing it back.
func mangled(f func(b []byte, off int64)) func(net.Conn) error {
	return func(c net.Conn) error {
		buf := make([]byte, 4096)
		var off int64
		for {
			n, err := c.Read(buf)
			if n > 0 {
				f(buf[:n], off)
				off += int64(n)
				if _, err := c.Write(buf[:n]); err != nil {
					return err
				}
			}
			if err != nil {
				return err
			}
		}
	}
}

func TestPattern(t *testing.T) {
	whole := make([]byte, 1000)
	Pattern(whole, 12345)
	parts := make([]byte, 1000)
	for _, cut := range [][2]int{{0, 3}, {3, 8}, {8, 37}, {37, 1000}} {
		Pattern(parts[cut[0]:cut[1]], 12345+int64(cut[0]))
	}
	if !bytes.Equal(whole, parts) {
		t.Fatal("the pattern depends on how it is cut")
	}
	// A shift by one octet, or by a chunk, shows at nearly every offset.
	shifted := make([]byte, 1000)
	for _, by := range []int64{1, 1024} {
		Pattern(shifted, 12345+by)
		same := 0
		for i := range whole {
			if whole[i] == shifted[i] {
				same++
			}
		}
		if same > 20 {
			t.Fatalf("shifted by %d: %d octets of 1000 equal", by, same)
		}
	}
}

func TestCleanEcho(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			client, server := tr.dial(t)
			echoed := serve(server, Echo)
			k := Start(client, Config{Chunk: 1000, Interval: 2 * time.Millisecond})
			eventually(t, "50 kB echoed", func() bool { return k.Snapshot().Echoed >= 50_000 })
			if s := k.Snapshot(); s.Mismatch != -1 || s.Err != nil || s.Written < s.Echoed {
				t.Fatalf("snapshot: %v", s)
			}
			r := k.Stop()
			t.Log(r)
			if err := r.Check(200 * time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if r.Written < 50_000 || r.Written%1000 != 0 || r.LongestGap <= 0 || r.GapAt.IsZero() {
				t.Fatalf("report %v", r)
			}
			if r2 := k.Stop(); r2 != r {
				t.Fatalf("second Stop: %v", r2)
			}
			// The connection is the caller's, open, without deadlines.
			if _, err := client.Write([]byte("more")); err != nil {
				t.Fatalf("write after Stop: %v", err)
			}
			got := make([]byte, 4)
			if _, err := io.ReadFull(client, got); err != nil || string(got) != "more" {
				t.Fatalf("read after Stop: %q %v", got, err)
			}
			client.Close()
			if err := <-echoed; err != nil {
				t.Fatalf("Echo: %v", err)
			}
		})
	}
}

func TestFlippedOctet(t *testing.T) {
	const at = 5000
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			client, server := tr.dial(t)
			serve(server, mangled(func(b []byte, off int64) {
				if off <= at && at < off+int64(len(b)) {
					b[at-off] ^= 0x20
				}
			}))
			k := Start(client, Config{Interval: time.Millisecond})
			eventually(t, "past the flipped octet", func() bool { return k.Snapshot().Echoed > 2*at })
			r := k.Stop()
			t.Log(r)
			if r.Mismatch != at || r.Err != nil || r.Lost() != 0 {
				t.Fatalf("report %v, want the mismatch at %d", r, at)
			}
			if r.Check(0) == nil {
				t.Fatal("Check passed a mismatch")
			}
		})
	}
}

func TestPausedEcho(t *testing.T) {
	const pause = 300 * time.Millisecond
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			client, server := tr.dial(t)
			paused := false
			serve(server, mangled(func(b []byte, off int64) {
				if !paused && off >= 20_000 {
					paused = true
					time.Sleep(pause)
				}
			}))
			k := Start(client, Config{})
			eventually(t, "past the pause", func() bool { return k.Snapshot().Echoed > 40_000 })
			r := k.Stop()
			t.Log(r)
			if r.LongestGap < pause || r.LongestGap > pause+time.Second || r.GapAt.IsZero() {
				t.Fatalf("longest gap %v, want about %v", r.LongestGap, pause)
			}
			if err := r.Check(2 * pause); err != nil {
				t.Fatal(err)
			}
			if r.Check(pause/2) == nil {
				t.Fatal("Check passed a gap longer than allowed")
			}
		})
	}
}

func TestEchoThatNeverAnswers(t *testing.T) {
	client, server := pipe(t)
	go io.Copy(io.Discard, server) // reads, never writes back
	k := Start(client, Config{Interval: time.Millisecond, Linger: 200 * time.Millisecond})
	eventually(t, "some written", func() bool { return k.Snapshot().Written > 10_000 })
	if s := k.Snapshot(); s.LongestGap <= 0 {
		t.Fatalf("no gap running: %v", s)
	}
	start := time.Now()
	r := k.Stop()
	t.Log(r)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Stop took %v", took)
	}
	if r.Echoed != 0 || r.Lost() != r.Written || r.Err != nil || r.LongestGap < 200*time.Millisecond {
		t.Fatalf("report %v", r)
	}
	if r.Check(0) == nil {
		t.Fatal("Check passed a loss")
	}
}

func TestEchoThatNeverReads(t *testing.T) {
	client, server := pipe(t)
	k := Start(client, Config{Linger: 100 * time.Millisecond})
	time.Sleep(50 * time.Millisecond) // the first write blocks: nobody reads
	r := k.Stop()
	t.Log(r)
	if r.Err != nil || r.Echoed != 0 || r.Written != 0 || r.LongestGap < 100*time.Millisecond {
		t.Fatalf("report %v", r)
	}
	// The deadlines Stop set are cleared.
	go func() { server.Write([]byte("x")) }()
	b := make([]byte, 1)
	if _, err := client.Read(b); err != nil {
		t.Fatalf("read after Stop: %v", err)
	}
}

func TestEchoEnds(t *testing.T) {
	client, server := pipe(t)
	server.Close()
	k := Start(client, Config{Linger: 100 * time.Millisecond})
	eventually(t, "the error", func() bool { return k.Snapshot().Err != nil })
	r := k.Stop()
	if !errors.Is(r.Err, io.ErrClosedPipe) && !errors.Is(r.Err, io.EOF) {
		t.Fatalf("report %v", r)
	}
}

func TestStopLeaksNoGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	for _, tr := range transports {
		client, server := tr.dial(t)
		echoed := serve(server, Echo)
		k := Start(client, Config{Interval: time.Millisecond})
		eventually(t, "echoes", func() bool { return k.Snapshot().Echoed > 10_000 })
		k.Stop()
		client.Close()
		<-echoed
		server.Close()

		// And one stopped while blocked both ways.
		client, server = pipe(t)
		k = Start(client, Config{Linger: 50 * time.Millisecond})
		time.Sleep(10 * time.Millisecond)
		k.Stop()
		client.Close()
		server.Close()
	}
	eventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
}
