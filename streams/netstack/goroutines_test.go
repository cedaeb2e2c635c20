package netstack

import (
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"hipnet.dev/overlay"
)

// settle waits until the number of goroutines is at most want, and
// returns it.
func settle(want int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// baseline returns the number of goroutines once it has stopped
// changing (earlier tests' timers may still be finishing).
func baseline() int {
	n := runtime.NumGoroutine()
	for range 100 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// TestGoroutines: a Transport runs GOMAXPROCS goroutines (netstack's TCP
// processors) and a connection none; Close stops them all, with
// connections, a blocked Read and a blocked Accept still open.
func TestGoroutines(t *testing.T) {
	before := baseline()
	n := newFakeNet()
	n.sync = true // no receiving goroutines of the fake
	la, lb := n.add(testHIT(1)), n.add(testHIT(2))
	a, err := New(la, Config{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(lb, Config{})
	if err != nil {
		t.Fatal(err)
	}
	perTransport := runtime.GOMAXPROCS(0)
	if got := settle(before + 2*perTransport); got != before+2*perTransport {
		t.Errorf("two Transports run %d goroutines, want %d", got-before, 2*perTransport)
	}

	l, err := b.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*overlay.Addr).Port
	var conns []net.Conn
	for range 10 {
		c, err := a.Dial(context.Background(), b.local, port)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		io.ReadFull(sc, make([]byte, 1))
		conns = append(conns, c, sc)
	}
	idle := before + 2*perTransport
	if got := settle(idle); got != idle {
		t.Errorf("20 idle connections run %d goroutines", got-idle)
	}

	// Blocked calls, ended by Close.
	done := make(chan struct{}, 2)
	go func() { _, _ = conns[0].Read(make([]byte, 1)); done <- struct{}{} }()
	go func() { _, _ = l.Accept(); done <- struct{}{} }()
	time.Sleep(20 * time.Millisecond)

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("a blocked call outlived Close")
		}
	}
	n.close()
	if got := settle(before); got > before {
		t.Fatalf("%d goroutines leaked:\n%s", got-before, stacks())
	}
}

// TestGoroutinesAfterTraffic: the same after bulk data and a lossy link,
// whose timers and retransmissions are pending when Close comes.
func TestGoroutinesAfterTraffic(t *testing.T) {
	before := baseline()
	func() {
		n := newFakeNet()
		n.drop = 0.05
		t.Cleanup(n.close)
		la, lb := n.add(testHIT(1)), n.add(testHIT(2))
		a, err := New(la, Config{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(lb, Config{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := b.Listen(0)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := l.Accept()
			if err == nil {
				_, _ = io.Copy(io.Discard, c)
			}
		}()
		c, err := a.Dial(context.Background(), b.local, l.Addr().(*overlay.Addr).Port)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = c.Write(make([]byte, 8<<20)) }() // still writing at Close
		time.Sleep(50 * time.Millisecond)
		a.Close()
		b.Close()
		n.close()
	}()
	if got := settle(before); got > before {
		t.Fatalf("%d goroutines leaked:\n%s", got-before, filterStacks(stacks()))
	}
}

// filterStacks keeps the goroutines that mention gvisor or this package.
func filterStacks(s string) string {
	var keep []string
	for _, g := range strings.Split(s, "\n\n") {
		if strings.Contains(g, "gvisor") || strings.Contains(g, "netstack") {
			keep = append(keep, g)
		}
	}
	return strings.Join(keep, "\n\n")
}
