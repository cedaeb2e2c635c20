package overlay

import (
	"bytes"
	"testing"
	"time"
)

// spis returns s's SPIs with peer h.
func spis(s *Stack, h interface{ String() string }) (in, out uint32) {
	for _, p := range s.Peers() {
		if p.HIT.String() == h.String() {
			return p.InSPI, p.OutSPI
		}
	}
	return 0, 0
}

// exchange sends n datagrams of size octets from a to b and checks that
// each arrives intact.
func exchange(t *testing.T, a, b *Stack, n, size int) {
	t.Helper()
	ca, cb := listen(t, a, 40), listen(t, b, 41)
	defer ca.Close()
	defer cb.Close()
	buf := make([]byte, 2048)
	for i := 0; i < n; i++ {
		msg := pattern(i, size)
		if _, err := ca.WriteTo(msg, &Addr{HIT: b.HIT(), Port: 41}); err != nil {
			t.Fatal(err)
		}
		cb.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, _, err := cb.ReadFromAddr(buf)
		if err != nil || !bytes.Equal(buf[:m], msg) {
			t.Fatalf("datagram %d: %v", i, err)
		}
	}
}

// TestRekeyByTime: an outbound SA older than RekeyInterval is replaced by
// an UPDATE rekey (with a new Diffie-Hellman exchange), and data flows on
// the new SAs.
func TestRekeyByTime(t *testing.T) {
	short := func(c *Config) { c.RekeyInterval = 1500 * time.Millisecond }
	a, b := connected(t, short, nil)
	in0, out0 := spis(a, b.HIT())
	exchange(t, a, b, 3, 100)
	waitFor(t, 10*time.Second, "a rekey by time", func() bool {
		in, out := spis(a, b.HIT())
		return in != in0 && out != out0 && in != 0 && out != 0
	})
	exchange(t, a, b, 3, 100)
}

// TestRekeyByVolume: an outbound SA that sealed RekeyBytes is replaced,
// while the interval is far off.
func TestRekeyByVolume(t *testing.T) {
	small := func(c *Config) { c.RekeyBytes = 50 << 10 }
	a, b := connected(t, small, nil)
	in0, out0 := spis(a, b.HIT())
	exchange(t, a, b, 40, 1000) // 40 kB: under the limit
	time.Sleep(1500 * time.Millisecond)
	if in, out := spis(a, b.HIT()); in != in0 || out != out0 {
		t.Fatalf("rekeyed under the volume: %d/%d -> %d/%d", in0, out0, in, out)
	}
	exchange(t, a, b, 20, 1000) // past 50 kB
	waitFor(t, 10*time.Second, "a rekey by volume", func() bool {
		in, out := spis(a, b.HIT())
		return in != in0 && out != out0 && in != 0 && out != 0
	})
	exchange(t, a, b, 3, 100)
}
