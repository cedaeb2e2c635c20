package esp_test

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"hipnet.dev/esp"
)

func TestRoundTripAllSizes(t *testing.T) {
	for _, s := range allSuites {
		t.Run(s.String(), func(t *testing.T) {
			o, in := newPair(t, s, 0x1000)
			buf := make([]byte, 0, 2048)
			out := make([]byte, 0, 2048)
			for n := 0; n <= 1500; n++ {
				payload := seqBytes(byte(n), n)
				pkt, err := o.Seal(buf[:0], payload, byte(n))
				if err != nil {
					t.Fatal(err)
				}
				if len(pkt) != n+s.Overhead(n) {
					t.Fatalf("len %d: packet %d octets, Overhead says %d", n, len(pkt), n+s.Overhead(n))
				}
				if (len(pkt)-16)%4 != 0 {
					t.Fatalf("len %d: ICV not 4-octet aligned", n)
				}
				if id, ok := esp.PeekSPI(pkt); !ok || id != 0x1000 {
					t.Fatalf("PeekSPI = %#x, %v", id, ok)
				}
				got, nh, err := in.Open(out[:0], pkt)
				if err != nil {
					t.Fatalf("len %d: %v", n, err)
				}
				if nh != byte(n) || !bytes.Equal(got, payload) {
					t.Fatalf("len %d: got %d octets nh %d", n, len(got), nh)
				}
			}
			if st := in.Stats(); st.OK != 1501 || st.AuthFailed+st.Malformed+st.Replayed+st.TooOld != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestOverheadExact(t *testing.T) {
	// header 8 + IV + pad-to-alignment(payload+2) - payload + ICV 16
	cases := []struct {
		s         esp.Suite
		n, wantOH int
	}{
		{esp.SuiteAESGCM16, 0, 8 + 8 + 4 + 16},
		{esp.SuiteAESGCM16, 2, 8 + 8 + 2 + 16},
		{esp.SuiteAESGCM16, 1400, 8 + 8 + 4 + 16},
		{esp.SuiteAES128CBCSHA256, 0, 8 + 16 + 16 + 16},
		{esp.SuiteAES128CBCSHA256, 14, 8 + 16 + 2 + 16},
		{esp.SuiteAES128CBCSHA256, 15, 8 + 16 + 17 + 16},
		{esp.SuiteAES256CBCSHA256, 1400, 8 + 16 + 8 + 16},
		{esp.SuiteNullSHA256, 1, 8 + 3 + 16},
		{esp.Suite(99), 10, 0},
	}
	for _, c := range cases {
		if got := c.s.Overhead(c.n); got != c.wantOH {
			t.Errorf("%v.Overhead(%d) = %d, want %d", c.s, c.n, got, c.wantOH)
		}
	}
}

func TestSuiteMetadata(t *testing.T) {
	want := map[esp.Suite][2]int{7: {0, 32}, 8: {16, 32}, 9: {32, 32}, 13: {20, 0}}
	for s, kl := range want {
		if e, a := s.KeyLen(); e != kl[0] || a != kl[1] {
			t.Errorf("%v.KeyLen() = %d, %d; want %v", s, e, a, kl)
		}
		if !s.Supported() || s.ICVLen() != 16 {
			t.Errorf("%v: Supported %v ICVLen %d", s, s.Supported(), s.ICVLen())
		}
	}
	for _, s := range []esp.Suite{0, 1, 12, 14, 15} {
		if s.Supported() {
			t.Errorf("%v supported", s)
		}
	}
	if got := esp.DefaultSuites(); len(got) != 2 || got[0] != 13 || got[1] != 8 {
		t.Errorf("DefaultSuites() = %v", got)
	}
	if esp.Suite(42).String() != "Suite(42)" {
		t.Errorf("String of unknown suite: %q", esp.Suite(42).String())
	}
}

func TestConfigValidation(t *testing.T) {
	good := testConfig(esp.SuiteAES128CBCSHA256, 1)
	cases := []struct {
		name string
		mod  func(*esp.Config)
		want error
	}{
		{"zero SPI", func(c *esp.Config) { c.SPI = 0 }, esp.ErrBadSPI},
		{"unknown suite", func(c *esp.Config) { c.Suite = 12 }, esp.ErrUnsupportedSuite},
		{"short enc key", func(c *esp.Config) { c.EncKey = c.EncKey[:15] }, esp.ErrKeyLength},
		{"short auth key", func(c *esp.Config) { c.AuthKey = c.AuthKey[:20] }, esp.ErrKeyLength},
		{"GCM with auth key", func(c *esp.Config) { c.Suite = esp.SuiteAESGCM16; c.EncKey = seqBytes(0, 20) }, esp.ErrKeyLength},
		{"GCM without salt", func(c *esp.Config) { c.Suite = esp.SuiteAESGCM16; c.AuthKey = nil }, esp.ErrKeyLength},
	}
	for _, c := range cases {
		cfg := good
		c.mod(&cfg)
		if _, err := esp.NewOutbound(cfg); !errors.Is(err, c.want) {
			t.Errorf("%s: NewOutbound err %v, want %v", c.name, err, c.want)
		}
		if _, err := esp.NewInbound(cfg); !errors.Is(err, c.want) {
			t.Errorf("%s: NewInbound err %v, want %v", c.name, err, c.want)
		}
	}
	// A failing RNG fails CBC key setup.
	cfg := good
	cfg.Rand = bytes.NewReader(nil)
	if _, err := esp.NewOutbound(cfg); err == nil {
		t.Error("NewOutbound with an empty Rand succeeded")
	}
}

func TestKeysAreCopied(t *testing.T) {
	cfg := testConfig(esp.SuiteNullSHA256, 5)
	o, _ := esp.NewOutbound(cfg)
	in, _ := esp.NewInbound(testConfig(esp.SuiteNullSHA256, 5))
	clear(cfg.AuthKey)
	if _, _, err := in.Open(nil, mustSeal(t, o, []byte("x"), 17)); err != nil {
		t.Fatalf("caller's key buffer changed the SA: %v", err)
	}
}

func TestReplayRejected(t *testing.T) {
	for _, s := range allSuites {
		o, in := newPair(t, s, 7)
		p := mustSeal(t, o, []byte("once"), 17)
		if _, _, err := in.Open(nil, p); err != nil {
			t.Fatal(err)
		}
		if _, _, err := in.Open(nil, p); !errors.Is(err, esp.ErrReplay) {
			t.Errorf("%v: replay: %v", s, err)
		}
		if st := in.Stats(); st.OK != 1 || st.Replayed != 1 {
			t.Errorf("%v: stats %+v", s, st)
		}
	}
}

func TestTooOldRejected(t *testing.T) {
	for _, s := range allSuites {
		o, in := newPair(t, s, 7)
		w := uint64(in.ReplayWindow())
		if w < 1024 {
			t.Fatalf("default window %d < 1024", w)
		}
		old := mustSeal(t, o, nil, 17)  // seq 1
		edge := mustSeal(t, o, nil, 17) // seq 2
		o.SetSeqForTest(w + 1)          // next is W+2: window [3, W+2]
		if _, _, err := in.Open(nil, mustSeal(t, o, nil, 17)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := in.Open(nil, old); !errors.Is(err, esp.ErrTooOld) {
			t.Errorf("%v: seq 1 with top W+2: %v, want ErrTooOld", s, err)
		}
		if _, _, err := in.Open(nil, edge); !errors.Is(err, esp.ErrTooOld) {
			t.Errorf("%v: seq 2 with top W+2: %v, want ErrTooOld", s, err)
		}
		if st := in.Stats(); st.TooOld != 2 {
			t.Errorf("%v: stats %+v", s, st)
		}
	}
}

func TestWindowEdgeAccepted(t *testing.T) {
	o, in := newPair(t, esp.SuiteAESGCM16, 7)
	w := uint64(in.ReplayWindow())
	var pkts [][]byte
	for range 3 {
		pkts = append(pkts, mustSeal(t, o, nil, 17)) // 1, 2, 3
	}
	o.SetSeqForTest(w + 1) // top becomes W+2: 3 is the oldest inside
	if _, _, err := in.Open(nil, mustSeal(t, o, nil, 17)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := in.Open(nil, pkts[2]); err != nil {
		t.Errorf("oldest in-window packet: %v", err)
	}
	if _, _, err := in.Open(nil, pkts[1]); !errors.Is(err, esp.ErrTooOld) {
		t.Errorf("one past the window: %v", err)
	}
}

func TestReorderWithinWindow(t *testing.T) {
	for _, s := range allSuites {
		o, in := newPair(t, s, 9)
		const n = 1000
		pkts := make([][]byte, n)
		for i := range pkts {
			pkts[i] = mustSeal(t, o, []byte{byte(i), byte(i >> 8)}, 17)
		}
		r := rand.New(rand.NewPCG(1, 2))
		r.Shuffle(n, func(i, j int) { pkts[i], pkts[j] = pkts[j], pkts[i] })
		for _, p := range pkts {
			if _, _, err := in.Open(nil, p); err != nil {
				t.Fatalf("%v: %v", s, err)
			}
		}
		for _, p := range pkts {
			if _, _, err := in.Open(nil, p); !errors.Is(err, esp.ErrReplay) {
				t.Fatalf("%v: second delivery: %v", s, err)
			}
		}
		if in.Highest() != n {
			t.Errorf("%v: Highest %d", s, in.Highest())
		}
	}
}

func TestTamperRejected(t *testing.T) {
	for _, s := range allSuites {
		t.Run(s.String(), func(t *testing.T) {
			o, in := newPair(t, s, 0x77)
			first := mustSeal(t, o, []byte("first"), 17)
			if _, _, err := in.Open(nil, first); err != nil {
				t.Fatal(err)
			}
			good := mustSeal(t, o, []byte("the genuine second packet"), 17)
			ivLen := map[esp.Suite]int{7: 0, 8: 16, 9: 16, 13: 8}[s]
			fields := map[string]int{
				"seq":        7,
				"ciphertext": 8 + ivLen + 1,
				"trailer":    len(good) - 17,
				"ICV":        len(good) - 1,
			}
			if ivLen > 0 {
				fields["IV"] = 8
			}
			for name, off := range fields {
				bad := append([]byte(nil), good...)
				bad[off] ^= 0x01
				if _, _, err := in.Open(nil, bad); !errors.Is(err, esp.ErrAuth) {
					t.Errorf("flipped %s: %v, want ErrAuth", name, err)
				}
				if in.Highest() != 1 {
					t.Fatalf("flipped %s moved the window to %d", name, in.Highest())
				}
			}
			// The SPI is authenticated: an SA with the tampered SPI and the
			// same keys must reject it.
			bad := append([]byte(nil), good...)
			bad[0] ^= 0x80
			in2, _ := esp.NewInbound(testConfig(s, 0x80000077))
			if _, _, err := in2.Open(nil, bad); !errors.Is(err, esp.ErrAuth) {
				t.Errorf("flipped SPI: %v, want ErrAuth", err)
			}
			if _, _, err := in.Open(nil, bad); !errors.Is(err, esp.ErrBadSPI) {
				t.Errorf("foreign SPI on this SA: %v, want ErrBadSPI", err)
			}
			// Truncated packets.
			if _, _, err := in.Open(nil, good[:len(good)-1]); !errors.Is(err, esp.ErrMalformed) && !errors.Is(err, esp.ErrAuth) {
				t.Errorf("truncated by one: %v", err)
			}
			if _, _, err := in.Open(nil, good[:8]); !errors.Is(err, esp.ErrShortPacket) {
				t.Errorf("header only: %v", err)
			}
			st := in.Stats()
			if st.OK != 1 || st.AuthFailed < uint64(len(fields)) || st.BadSPI != 1 {
				t.Errorf("stats %+v", st)
			}
			// After all that, the genuine packet still opens.
			p, _, err := in.Open(nil, good)
			if err != nil || string(p) != "the genuine second packet" {
				t.Errorf("genuine packet after forgeries: %q, %v", p, err)
			}
		})
	}
}

// A packet that authenticates but whose padding is not 1, 2, 3, ... is
// malformed (RFC 4303 §2.4) and does not move the window.
func TestBadPaddingRejected(t *testing.T) {
	const seq = 3
	for _, tc := range []struct {
		name string
		pt   []byte
	}{
		{"wrong pad bytes", []byte{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 0, 1, 2, 3, 7, 17}},
		{"pad length too big", []byte{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 15, 17}},
	} {
		// NULL suite, built by hand with a valid ICV.
		c := testConfig(esp.SuiteNullSHA256, katSPI)
		pt := tc.pt
		for len(pt)%4 != 0 {
			pt = append([]byte{'z'}, pt...)
		}
		pkt := append(header(katSPI, seq), pt...)
		pkt = append(pkt, hmacICV(c.AuthKey, pkt, seq)...)
		in, _ := esp.NewInbound(c)
		if _, _, err := in.Open(nil, pkt); !errors.Is(err, esp.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", tc.name, err)
		}
		if in.Highest() != 0 || in.Stats().Malformed != 1 {
			t.Errorf("%s: window %d stats %+v", tc.name, in.Highest(), in.Stats())
		}
	}
}

func TestESNAcrossSubspace(t *testing.T) {
	for _, s := range allSuites {
		t.Run(s.String(), func(t *testing.T) {
			o, in := newPair(t, s, 0x42)
			const start = 1<<32 - 4
			o.SetSeqForTest(start)
			in.SetHighestForTest(start)
			var pkts [][]byte // seqs 2^32-3 .. 2^32+4
			for range 8 {
				pkts = append(pkts, mustSeal(t, o, []byte{byte(len(pkts))}, 17))
			}
			if o.Seq() != 1<<32+4 {
				t.Fatalf("Seq %#x", o.Seq())
			}
			// Deliver out of order across the boundary.
			for _, i := range []int{0, 4, 1, 7, 3, 2, 6, 5} {
				p, _, err := in.Open(nil, pkts[i])
				if err != nil || len(p) != 1 || p[0] != byte(i) {
					t.Fatalf("packet %d: %v", i, err)
				}
			}
			if in.Highest() != 1<<32+4 {
				t.Errorf("Highest %#x", in.Highest())
			}
			for i := range pkts {
				if _, _, err := in.Open(nil, pkts[i]); !errors.Is(err, esp.ErrReplay) {
					t.Errorf("replay of %d: %v", i, err)
				}
			}
			// A receiver that has not followed into subspace 1 infers the
			// high bits as 0 and the ICV fails: the high bits are
			// authenticated although they never travel.
			fresh, _ := esp.NewInbound(testConfig(s, 0x42))
			if _, _, err := fresh.Open(nil, pkts[7]); !errors.Is(err, esp.ErrAuth) {
				t.Errorf("subspace-1 packet on a fresh SA: %v, want ErrAuth", err)
			}
		})
	}
}

func TestNeedsRekey(t *testing.T) {
	cfg := testConfig(esp.SuiteAESGCM16, 3)
	cfg.RekeyAfter = 5
	o, _ := esp.NewOutbound(cfg)
	for i := 1; i <= 5; i++ {
		if o.NeedsRekey() {
			t.Fatalf("NeedsRekey before packet %d", i)
		}
		mustSeal(t, o, nil, 17)
	}
	if !o.NeedsRekey() {
		t.Error("NeedsRekey false after RekeyAfter packets")
	}
	d, _ := esp.NewOutbound(testConfig(esp.SuiteAESGCM16, 3))
	d.SetSeqForTest(esp.DefaultRekeyAfter - 1)
	if d.NeedsRekey() {
		t.Error("default: NeedsRekey one packet early")
	}
	mustSeal(t, d, nil, 17)
	if !d.NeedsRekey() || esp.DefaultRekeyAfter >= 1<<32 {
		t.Error("default: NeedsRekey not set before the 32-bit wrap")
	}
}

func TestSequenceExhausted(t *testing.T) {
	for _, s := range allSuites {
		o, in := newPair(t, s, 3)
		o.SetSeqForTest(math.MaxUint64 - 1)
		last, err := o.Seal(nil, []byte("last"), 17)
		if err != nil {
			t.Fatalf("%v: seq 2^64-1: %v", s, err)
		}
		if _, err := o.Seal(nil, []byte("wrap"), 17); !errors.Is(err, esp.ErrSequenceExhausted) {
			t.Errorf("%v: after 2^64-1: %v", s, err)
		}
		if _, err := o.Seal(nil, []byte("wrap"), 17); !errors.Is(err, esp.ErrSequenceExhausted) || o.Seq() != math.MaxUint64 {
			t.Errorf("%v: counter cycled: %v, Seq %d", s, err, o.Seq())
		}
		in.SetHighestForTest(math.MaxUint64 - 10)
		if p, _, err := in.Open(nil, last); err != nil || string(p) != "last" {
			t.Errorf("%v: open seq 2^64-1: %v", s, err)
		}
	}
}

func TestInPlace(t *testing.T) {
	for _, s := range allSuites {
		o, in := newPair(t, s, 11)
		payload := seqBytes(1, 300)
		// Seal: the caller assembled the payload where the ciphertext
		// goes, at PayloadOffset: SPI and sequence number, then the IV.
		hdr := 8 + map[esp.Suite]int{7: 0, 8: 16, 9: 16, 13: 8}[s]
		if got := o.PayloadOffset(); got != hdr {
			t.Fatalf("%v: PayloadOffset %d, want %d", s, got, hdr)
		}
		buf := make([]byte, 0, 2048)
		copy(buf[:cap(buf)][hdr:], payload)
		pkt, err := o.Seal(buf, buf[hdr:hdr+len(payload)], 17)
		if err != nil || &pkt[0] != &buf[:1][0] {
			t.Fatalf("%v: in-place seal: %v", s, err)
		}
		// Seal with payload at the start of dst's free space (inexact overlap).
		buf2 := make([]byte, 0, 2048)
		copy(buf2[:cap(buf2)], payload)
		pkt2, err := o.Seal(buf2, buf2[:len(payload)], 17)
		if err != nil {
			t.Fatal(err)
		}
		// Open in place at the start of the packet.
		got, _, err := in.Open(pkt[:0], pkt)
		if err != nil || !bytes.Equal(got, payload) || &got[0] != &pkt[0] {
			t.Fatalf("%v: open in place: %v", s, err)
		}
		// Open exactly over the ciphertext.
		got, _, err = in.Open(pkt2[hdr:hdr], pkt2)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("%v: open over ciphertext: %v", s, err)
		}
	}
}

func TestAppendsToDst(t *testing.T) {
	o, in := newPair(t, esp.SuiteAESGCM16, 1)
	pkt, _ := o.Seal([]byte("prefix"), []byte("body"), 17)
	if string(pkt[:6]) != "prefix" {
		t.Fatal("Seal did not append")
	}
	got, _, err := in.Open([]byte("head:"), pkt[6:])
	if err != nil || string(got) != "head:body" {
		t.Fatalf("Open did not append: %q %v", got, err)
	}
}

func TestPeekSPI(t *testing.T) {
	if _, ok := esp.PeekSPI([]byte{0, 0, 0, 0, 1, 2, 3, 4}); ok {
		t.Error("zero SPI (non-ESP marker) accepted")
	}
	if _, ok := esp.PeekSPI([]byte{1, 2, 3}); ok {
		t.Error("short packet accepted")
	}
	if spi, ok := esp.PeekSPI([]byte{1, 2, 3, 4, 0, 0, 0, 1}); !ok || spi != 0x01020304 {
		t.Errorf("PeekSPI = %#x %v", spi, ok)
	}
}

func TestConcurrent(t *testing.T) {
	for _, s := range allSuites {
		o, in := newPair(t, s, 12)
		const workers, each = 4, 200
		var wg sync.WaitGroup
		pkts := make(chan []byte, workers*each)
		for range workers {
			wg.Go(func() {
				buf := make([]byte, 0, 256)
				for range each {
					p, err := o.Seal(buf[:0], []byte("concurrent"), 17)
					if err != nil {
						t.Error(err)
						return
					}
					pkts <- append([]byte(nil), p...)
				}
			})
		}
		wg.Wait()
		close(pkts)
		all := make([][]byte, 0, workers*each)
		for p := range pkts {
			all = append(all, p)
		}
		var ok sync.WaitGroup
		for w := range workers {
			ok.Go(func() {
				out := make([]byte, 0, 256)
				for i := w; i < len(all); i += workers {
					// Every packet twice, from two goroutines: exactly one wins.
					in.Open(out[:0], all[i])
					in.Open(out[:0], all[(i+1)%len(all)])
				}
			})
		}
		ok.Wait()
		st := in.Stats()
		if st.OK != workers*each || st.Replayed != workers*each || o.Seq() != workers*each {
			t.Errorf("%v: stats %+v, seq %d", s, st, o.Seq())
		}
	}
}
