package overlay

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"hipnet.dev/handshake"
)

// recorder is a PacketConn over UDP that keeps copies of the ESP it sends.
type recorder struct {
	net.PacketConn
	mu  sync.Mutex
	esp [][]byte
}

func (r *recorder) WriteTo(b []byte, to net.Addr) (int, error) {
	if Classify(b) == KindESP {
		r.mu.Lock()
		if len(r.esp) < 1000 {
			r.esp = append(r.esp, bytes.Clone(b))
		}
		r.mu.Unlock()
	}
	return r.PacketConn.WriteTo(b, to)
}

func (r *recorder) captured() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.esp...)
}

// TestSpray: while datagrams flow from a to b, a third socket sprays b's
// port with junk, fake HIP headers, fake ESP (random SPIs, b's real SPI with
// garbage) and replays of a's real ESP. Every genuine datagram arrives
// intact, the junk is counted, and the association is undisturbed.
func TestSpray(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{PacketConn: pc}
	a, b := connected(t, func(c *Config) { c.PacketConn = rec }, nil)
	ca, cb := listen(t, a, 0), listen(t, b, 20)
	pb, _ := peerInfo(b, a.HIT())
	realSPI := pb.InSPI

	sprayer, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sprayer.Close()
	target := net.UDPAddrFromAddrPort(b.LocalAddr())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(7, 11))
		junk := func(n int) []byte {
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			return p
		}
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			var d []byte
			switch i % 6 {
			case 0: // random octets, often short
				d = junk(rng.IntN(40))
			case 1: // zero marker + garbage
				d = append(make([]byte, 4), junk(rng.IntN(200))...)
			case 2: // zero marker + a plausible HIP header + garbage
				d = append(make([]byte, 4), 59, 4, 0x10|byte(1+rng.IntN(20)), 0x21, 0, 0)
				d = append(d, junk(36+rng.IntN(100))...)
			case 3: // random SPI
				d = junk(8 + rng.IntN(1400))
				d[0] |= 0x80
			case 4: // b's real SPI, garbage after
				d = junk(8 + rng.IntN(200))
				binary.BigEndian.PutUint32(d, realSPI)
			case 5: // a replay of a's real ESP, or STUN
				if caught := rec.captured(); len(caught) > 0 && rng.IntN(2) == 0 {
					d = caught[rng.IntN(len(caught))]
				} else {
					d = stunMessage(0)
				}
			}
			sprayer.WriteTo(d, target)
			if i%8 == 0 {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}()
	to := &Addr{HIT: b.HIT(), Port: 20}
	for i := range 300 {
		msg := pattern(i, 1+i*3)
		if _, err := ca.WriteTo(msg, to); err != nil {
			t.Fatal(err)
		}
		got, from := readOne(t, cb, 2*time.Second)
		if !bytes.Equal(got, msg) || from.HIT != a.HIT() {
			t.Fatalf("datagram %d corrupted", i)
		}
	}
	close(done)
	wg.Wait()
	barrier(t, b)
	d := b.Stats().Drops
	t.Logf("b drops: %+v", d)
	if d.Short == 0 || d.Malformed == 0 || d.UnknownSPI == 0 || d.AuthFailure == 0 || d.Replay == 0 || d.STUN == 0 {
		t.Errorf("drop counters did not all rise: %+v", d)
	}
	if p, ok := peerInfo(b, a.HIT()); !ok || p.State != "ESTABLISHED" || p.InSPI != realSPI || p.PacketsIn != 300 {
		t.Errorf("b's association disturbed: %+v", p)
	}
	if p, ok := peerInfo(a, b.HIT()); !ok || p.State != "ESTABLISHED" {
		t.Errorf("a's association disturbed: %+v", p)
	}
}

// TestLossyLink: both stacks sit behind a link with 10% loss, duplication
// and reordering. The BEX completes by retransmission, datagrams mostly
// arrive, none twice, none corrupted.
func TestLossyLink(t *testing.T) {
	la := newLink(t, 1, 0.1, 0.1, 0.1)
	lb := newLink(t, 2, 0.1, 0.1, 0.1)
	hs := handshake.Config{RetransmitTimeout: 50 * time.Millisecond, Retries: 8, PuzzleDifficulty: 1}
	a := newTestStack(t, 0, func(c *Config) { c.PacketConn = la; c.Handshake = hs })
	b := newTestStack(t, 1, func(c *Config) { c.PacketConn = lb; c.Handshake = hs })
	introduce(a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.HIT()); err != nil {
		t.Fatalf("Connect over a lossy link: %v", err)
	}
	ca, cb := listen(t, a, 0), listen(t, b, 30)
	const n = 300
	got := map[int]int{}
	var mu sync.Mutex
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 2048)
		for {
			cb.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			m, _, err := cb.ReadFrom(buf)
			if err != nil {
				return
			}
			i := int(binary.BigEndian.Uint32(buf))
			if m != 4+i%500 || !bytes.Equal(buf[4:m], pattern(i, i%500)) {
				t.Errorf("datagram %d corrupted", i)
			}
			mu.Lock()
			got[i]++
			mu.Unlock()
		}
	}()
	for i := range n {
		msg := binary.BigEndian.AppendUint32(nil, uint32(i))
		msg = append(msg, pattern(i, i%500)...)
		if _, err := ca.WriteTo(msg, &Addr{HIT: b.HIT(), Port: 30}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Microsecond)
	}
	<-readDone
	dups := 0
	for _, c := range got {
		if c > 1 {
			dups++
		}
	}
	sent, dropped := la.counts()
	t.Logf("%d of %d datagrams arrived; link a: %d sent, %d dropped", len(got), n, sent, dropped)
	if len(got) < n*7/10 {
		t.Errorf("only %d of %d arrived", len(got), n)
	}
	if len(got) == n {
		t.Errorf("all %d arrived: the link lost nothing?", n)
	}
	if dups != 0 {
		t.Errorf("%d datagrams delivered twice (anti-replay)", dups)
	}
	if b.Stats().Drops.Replay == 0 {
		t.Error("no duplicate was caught by the replay window")
	}
}

// FuzzReceive feeds arbitrary datagrams through the whole receive path of a
// live stack with an established association: no panic, and the
// association carries on (same state and SAs, a genuine datagram still
// gets through). An input starting with FF FF FF FF gets the live inbound
// SPI there, so that the fuzzer reaches Open on a real SA.
func FuzzReceive(f *testing.F) {
	a, b := connected(f, nil, nil)
	ca, cb := listen(f, a, 0), listen(f, b, 40)
	barrier(f, b)
	before, _ := peerInfo(b, a.HIT())
	from := a.LocalAddr()
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Add(stunMessage(0))
	f.Add(append(make([]byte, 4), 59, 4, 0x12, 0x21, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := bytes.Clone(data)
		if len(d) >= 4 && binary.BigEndian.Uint32(d) == 0xffffffff {
			binary.BigEndian.PutUint32(d, before.InSPI)
		}
		b.receive(d, from)
		barrier(t, b)
		p, ok := peerInfo(b, a.HIT())
		if !ok || p.State != before.State && p.State != "ESTABLISHED" || p.InSPI != before.InSPI || p.OutSPI != before.OutSPI {
			t.Fatalf("association disturbed: %+v, was %+v", p, before)
		}
		// Whatever the input queued, a genuine datagram still arrives.
		if _, err := ca.WriteTo([]byte("still here"), &Addr{HIT: b.HIT(), Port: 40}); err != nil {
			t.Fatal(err)
		}
		for {
			got, from := readOne(t, cb, 2*time.Second)
			if from.HIT == a.HIT() && string(got) == "still here" {
				break
			}
		}
	})
}
