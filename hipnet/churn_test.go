package hipnet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/streams"
)

// TestChurnHeap: a responder serves churnPeers short-lived initiators,
// each of which dials, echoes 64 KiB over a stream and closes its conn and
// its Node. Half of them lose the QUIC CONNECTION_CLOSE on the way (their
// ESP is cut before Close; the HIP CLOSE still goes out), so that only the
// CLOSE tells the responder they are gone. Within a short settle, far below
// the QUIC idle timeout (streams.DefaultIdleTimeout, 30 s), the process
// heap must be back near where it was before the churn: what a closed
// association leaves behind is the responder's CLOSED record (it answers a
// retransmitted CLOSE, RFC 7401 §4.4.3), at most churnPerPeer octets.
//
// The heap is the whole process's: the initiators ran in it too, so the
// assertion covers their teardown as well as the responder's.
func TestChurnHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("churns 300 nodes")
	}
	const (
		churnPeers   = 300
		churnWorkers = 4
		churnPerPeer = 4096
		echoSize     = 64 << 10
		settleMax    = 2 * time.Second
	)
	server := newTestNode(t, Config{})
	echoServer(t, server, 7)
	data := randomBytes(64, echoSize)

	cycle := func(i int) error {
		id, err := GenerateIdentity()
		if err != nil {
			return err
		}
		upc, err := churnSocket(i)
		if err != nil {
			return err
		}
		pc := &cutConn{PacketConn: upc}
		n, err := NewNode(Config{Identity: id, PacketConn: pc})
		if err != nil {
			upc.Close()
			return err
		}
		defer n.Close()
		n.AddPeer(server.HIT(), server.LocalAddr())
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := n.DialContext(ctx, "tcp", addrOf(server, 7))
		if err != nil {
			return fmt.Errorf("peer %d: dial: %w", i, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		werr := make(chan error, 1)
		go func() {
			_, err := c.Write(data)
			if err == nil {
				err = c.(interface{ CloseWrite() error }).CloseWrite()
			}
			werr <- err
		}()
		got, err := io.ReadAll(c)
		if err != nil {
			return fmt.Errorf("peer %d: read: %w", i, err)
		}
		if err := <-werr; err != nil {
			return fmt.Errorf("peer %d: write: %w", i, err)
		}
		if !bytes.Equal(got, data) {
			return fmt.Errorf("peer %d: echo differs: %d of %d octets", i, len(got), len(data))
		}
		if err := c.Close(); err != nil {
			return fmt.Errorf("peer %d: close conn: %w", i, err)
		}
		if i%2 == 1 {
			pc.cut.Store(true)
		}
		if err := n.Close(); err != nil {
			return fmt.Errorf("peer %d: close node: %w", i, err)
		}
		return nil
	}
	churn := func(from, count int) {
		t.Helper()
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
			next = from
		)
		for range churnWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					i := next
					next++
					mu.Unlock()
					if i >= from+count {
						return
					}
					if err := cycle(i); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			t.Error(err)
		}
		if len(errs) > 0 {
			t.FailNow()
		}
	}
	live := func() []PeerInfo {
		var l []PeerInfo
		for _, p := range server.Peers() {
			if p.State != "CLOSED" && p.State != "CLOSING" {
				l = append(l, p)
			}
		}
		return l
	}
	// settle waits until the responder has no live association and no
	// QUIC connection.
	quic := server.streams.(*streams.Manager)
	settle := func() {
		t.Helper()
		deadline := time.Now().Add(settleMax)
		for len(live()) > 0 || quic.ConnectionCount() > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("after %v: live associations %+v, QUIC connections %d",
					settleMax, live(), quic.ConnectionCount())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Warm-up: pools, quic-go's and crypto's lazily built tables, the
	// responder's R1s.
	churn(0, 2*churnWorkers)
	settle()
	goroutines := runtime.NumGoroutine()
	before := heapInUse()
	for range 4 {
		time.Sleep(20 * time.Millisecond)
		before = min(before, heapInUse())
	}
	started := server.Stats().BEX.Started

	start := time.Now()
	churn(2*churnWorkers, churnPeers)
	took := time.Since(start)
	settle()
	// The last connections closed linger in quic-go for three PTOs, to
	// answer a late packet with their CONNECTION_CLOSE (RFC 9000 §10.2),
	// and hold their node until then: poll until the heap is steady.
	var after uint64
	perPeer := func() int64 { return (int64(after) - int64(before)) / churnPeers }
	for deadline := time.Now().Add(settleMax); ; time.Sleep(100 * time.Millisecond) {
		h := heapInUse()
		steady := after != 0 && h+16<<10 >= after
		if after == 0 || h < after {
			after = h
		}
		if (steady && perPeer() <= churnPerPeer) || time.Now().After(deadline) {
			break
		}
	}

	t.Logf("FIGURE churn heap before=%d after=%d per_peer=%d (%d peers in %v, %d CLOSED records left)",
		before, after, perPeer(), churnPeers, took.Round(time.Millisecond), len(server.Peers()))
	if perPeer() > churnPerPeer {
		t.Errorf("%d octets of heap retained per closed peer, want <= %d", perPeer(), churnPerPeer)
	}
	// One base exchange per initiator, as Responder: none started towards
	// a peer that had closed (a stream's packets after the CLOSE would
	// restart one, RFC 7401 §4.4.3).
	if n := server.Stats().BEX.Started - started; n != churnPeers {
		t.Errorf("responder started %d base exchanges, want %d", n, churnPeers)
	}
	settleGoroutines(t, goroutines)
}

// heapInUse collects garbage (twice, so that sync.Pools drop their victim
// caches too) and returns the live heap.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// churnSocket opens initiator i's socket on an address of its own in
// 127/8 where the system has them (Linux), so that the responder's R1 rate
// limit per address does not pace the churn; else on 127.0.0.1.
func churnSocket(i int) (net.PacketConn, error) { return net.ListenPacket("udp", ownLoopback(i)) }

// cutConn is a node's socket whose ESP can be cut off: once cut is set,
// it sends HIP control packets (behind the zero non-ESP marker, RFC 5770
// §5.1) and drops everything else. A node closed with its ESP cut sends
// CLOSE, but the QUIC CONNECTION_CLOSE of its streams never arrives, as
// when it is lost on the way.
type cutConn struct {
	net.PacketConn
	cut atomic.Bool
}

func (c *cutConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.cut.Load() && (len(b) < 4 || b[0]|b[1]|b[2]|b[3] != 0) {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}
