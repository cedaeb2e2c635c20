package udpbatch

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestGROSplits sends 40 equal datagrams and a short one as one GSO
// message to a GRO reader, which must hand back the 41 originals; a
// reader without GRO gets them segmented by the kernel.
func TestGROSplits(t *testing.T) {
	for _, gro := range []bool{true, false} {
		su, ru := listen(t, "udp", "[::]:0"), listen(t, "udp", "[::]:0")
		sc, rc := New(su), newConn(ru, options{noGRO: !gro})
		if !sc.Caps().GSO || rc.Caps().GRO != gro {
			t.Skipf("sender %+v, receiver %+v", sc.Caps(), rc.Caps())
		}
		w, r := sc.NewWriter(64), rc.NewReader(8)
		var pkts [][]byte
		for i := range 40 {
			pkts = append(pkts, testDatagram(i, 1200))
		}
		pkts = append(pkts, testDatagram(40, 500))
		dst := to("127.0.0.1", ru)
		if n, err := w.WriteBatchTo(pkts, dst); n != len(pkts) || err != nil || w.messages != 1 {
			t.Fatalf("sent %d of %d in %d messages: %v", n, len(pkts), w.messages, err)
		}
		expectDatagrams(t, ru, r, pkts, to("127.0.0.1", su))
		want := uint64(0)
		if gro {
			want = 1
		}
		if r.superPackets != want {
			t.Errorf("GRO %v: %d super-packets, want %d", gro, r.superPackets, want)
		}
	}
}

// TestTruncatedDropped checks that a datagram larger than the buffer is
// dropped and the next one returned.
func TestTruncatedDropped(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			su, ru := listen(t, "udp4", "127.0.0.1:0"), listen(t, "udp4", "127.0.0.1:0")
			r := newConn(ru, m.o).newReader(8, 1024)
			dst := to("127.0.0.1", ru)
			long, short := testDatagram(1, 2000), testDatagram(2, 100)
			su.WriteToUDPAddrPort(long, dst)
			su.WriteToUDPAddrPort(short, dst)
			expectDatagrams(t, ru, r, [][]byte{short}, to("127.0.0.1", su))
			if r.truncated != 1 {
				t.Errorf("%d truncated, want 1", r.truncated)
			}
		})
	}
}

// TestClosed checks that a read loop learns of Close: a Read on a closed
// Conn, and one blocked when Close comes, return net.ErrClosed, as does a
// write.
func TestClosed(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			u := listen(t, "udp", "[::]:0")
			c := newConn(u, m.o)
			r, w := c.NewReader(8), c.NewWriter(8)
			done := make(chan error, 1)
			go func() {
				_, err := r.Read()
				done <- err
			}()
			time.Sleep(20 * time.Millisecond)
			u.Close()
			select {
			case err := <-done:
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("blocked Read: %v, want net.ErrClosed", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Read still blocked after Close")
			}
			if _, err := r.Read(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read: %v, want net.ErrClosed", err)
			}
			if _, err := w.WriteBatchTo([][]byte{{1}}, to("127.0.0.1", u)); !errors.Is(err, net.ErrClosed) {
				t.Errorf("WriteBatch: %v, want net.ErrClosed", err)
			}
			// A Conn made after Close fails the same way.
			if _, err := New(u).NewReader(1).Read(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read on a Conn of a closed socket: %v, want net.ErrClosed", err)
			}
		})
	}
}

// TestDeadline checks that the socket's read deadline bounds a Read.
func TestDeadline(t *testing.T) {
	u := listen(t, "udp4", "127.0.0.1:0")
	r := New(u).NewReader(8)
	u.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := r.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read: %v, want os.ErrDeadlineExceeded", err)
	}
}

// TestReaderGrows: a Reader starts with one buffer and keeps to it while
// datagrams come one at a time (each Read waits for its datagram); once
// they come faster than one a Read, it takes a buffer for every message
// of its batch, and no datagram is lost or changed on the way.
func TestReaderGrows(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			su, ru := listen(t, "udp4", "127.0.0.1:0"), listen(t, "udp4", "127.0.0.1:0")
			r := newConn(ru, m.o).NewReader(8)
			if len(r.bufs) != BufferSize || r.active != 1 {
				t.Fatalf("new Reader: %d octets of buffers, %d active; want one buffer", len(r.bufs), r.active)
			}
			dst, src := to("127.0.0.1", ru), to("127.0.0.1", su)
			seq := 0
			for range 2 * growStreak {
				got := make(chan error, 1)
				go func() {
					_, err := r.Read()
					got <- err
				}()
				time.Sleep(5 * time.Millisecond) // the Read waits by now
				seq++
				su.WriteToUDPAddrPort(testDatagram(seq, 100), dst)
				if err := <-got; err != nil {
					t.Fatal(err)
				}
			}
			if r.active != 1 {
				t.Fatalf("%d buffers after datagrams that came one at a time", r.active)
			}
			var burst [][]byte
			for range 8 * growStreak {
				seq++
				burst = append(burst, testDatagram(seq, 100))
			}
			for _, b := range burst {
				su.WriteToUDPAddrPort(b, dst)
			}
			expectDatagrams(t, ru, r, burst, src)
			want := len(r.msgs) // 1 without batching: nothing to grow into
			if r.active != want || len(r.bufs) != want*BufferSize {
				t.Fatalf("after a burst: %d active, %d octets of buffers; want %d buffers", r.active, len(r.bufs), want)
			}
			burst = burst[:0]
			for range 20 {
				seq++
				burst = append(burst, testDatagram(seq, 1200))
			}
			for _, b := range burst {
				su.WriteToUDPAddrPort(b, dst)
			}
			expectDatagrams(t, ru, r, burst, src)
		})
	}
}
