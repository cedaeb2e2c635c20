package esp_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"hipnet.dev/esp"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz seed corpora from freshly sealed packets")

const fuzzSPI = 0x0badcafe

// FuzzOpen feeds arbitrary packets to an Inbound of each suite. It must
// never panic, and whatever it accepts must be byte for byte what Seal
// produces for that payload at that sequence number: the fuzzer may not
// find a forgery, a second encoding of a packet, or a packet that
// authenticates but carries a different payload.
func FuzzOpen(f *testing.F) {
	for i, s := range allSuites {
		o, _ := esp.NewOutbound(testConfig(s, fuzzSPI))
		f.Add(byte(i), mustSeal(f, o, []byte("seed"), 17))
		f.Add(byte(i), mustSeal(f, o, nil, 59))
	}
	f.Add(byte(0), []byte{})
	f.Add(byte(3), make([]byte, 48))
	f.Fuzz(func(t *testing.T, sel byte, packet []byte) {
		s := allSuites[int(sel)%len(allSuites)]
		in, err := esp.NewInbound(testConfig(s, fuzzSPI))
		if err != nil {
			t.Fatal(err)
		}
		orig := append([]byte(nil), packet...)
		payload, nh, err := in.Open(nil, packet)
		if err != nil {
			if payload != nil {
				t.Fatal("payload returned with an error")
			}
			if in.Highest() != 0 {
				t.Fatal("rejected packet moved the window")
			}
			return
		}
		seq := in.Highest()
		o, _ := esp.NewOutbound(testConfig(s, fuzzSPI))
		o.SetSeqForTest(seq - 1)
		want := mustSeal(t, o, payload, nh)
		if !bytes.Equal(orig, want) {
			t.Fatalf("%v accepted a packet Seal would not produce:\n got %x\nwant %x", s, orig, want)
		}
		if _, _, err := in.Open(nil, orig); !errors.Is(err, esp.ErrReplay) {
			t.Fatalf("second delivery: %v", err)
		}
	})
}

// FuzzParseUDP: never panics; an accepted segment is exactly what
// AppendUDP builds from the parsed fields (plus ignored TFC padding).
func FuzzParseUDP(f *testing.F) {
	f.Add(esp.AppendUDP(nil, hit1, hit2, 40000, 8883, []byte("seed datagram")))
	f.Add(esp.AppendUDP(nil, hit1, hit2, 1, 2, nil))
	f.Add(append(esp.AppendUDP(nil, hit1, hit2, 7, 7, []byte{1}), 0, 0))
	f.Add([]byte{0, 1, 0, 2, 0, 8, 0, 0})
	f.Fuzz(func(t *testing.T, seg []byte) {
		sp, dp, payload, err := esp.ParseUDP(seg, hit1, hit2)
		if err != nil {
			return
		}
		want := esp.AppendUDP(nil, hit1, hit2, sp, dp, payload)
		if !bytes.Equal(seg[:len(want)], want) {
			t.Fatalf("accepted %x, AppendUDP gives %x", seg, want)
		}
	})
}

// TestFuzzSeeds keeps the committed seed corpora meaningful: every sealed
// packet seed must still open (so a framing change that would silently turn
// the seeds into garbage fails here). With -update-seeds it rewrites them.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	if *updateSeeds {
		writeSeeds(t)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("seed corpus missing: %v", err)
	}
	opened := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sel, pkt, ok := parseSeed(b)
		if !ok {
			t.Fatalf("%s: not a corpus file", e.Name())
		}
		in, _ := esp.NewInbound(testConfig(allSuites[int(sel)%len(allSuites)], fuzzSPI))
		if _, _, err := in.Open(nil, pkt); err == nil {
			opened++
		} else if e.Name()[:6] == "sealed" {
			t.Errorf("%s: sealed seed no longer opens: %v", e.Name(), err)
		}
	}
	if opened < len(allSuites) {
		t.Errorf("only %d seeds open", opened)
	}
}

func writeSeeds(t *testing.T) {
	write := func(name, body string) {
		dir := filepath.Dir(filepath.Join("testdata", "fuzz", name))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "fuzz", name), []byte("go test fuzz v1\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range allSuites {
		o, _ := esp.NewOutbound(testConfig(s, fuzzSPI))
		for j, p := range [][]byte{[]byte("hello"), seqBytes(0, 100)} {
			pkt := mustSeal(t, o, p, 17)
			write(fmt.Sprintf("FuzzOpen/sealed-suite%d-%d", s, j),
				fmt.Sprintf("byte(%q)\n[]byte(%s)\n", byte(i), strconv.Quote(string(pkt))))
		}
		o.SetSeqForTest(1<<32 + 9)
		pkt := mustSeal(t, o, []byte("esn"), 17)
		write(fmt.Sprintf("FuzzOpen/esn-suite%d", s), fmt.Sprintf("byte(%q)\n[]byte(%s)\n", byte(i), strconv.Quote(string(pkt))))
	}
	for j, seg := range [][]byte{
		esp.AppendUDP(nil, hit1, hit2, 40000, 8883, []byte("inner datagram")),
		esp.AppendUDP(nil, hit1, hit2, 443, 443, seqBytes(0, 33)),
	} {
		write(fmt.Sprintf("FuzzParseUDP/segment-%d", j), fmt.Sprintf("[]byte(%s)\n", strconv.Quote(string(seg))))
	}
}

// parseSeed reads the two-value corpus files writeSeeds produces.
func parseSeed(b []byte) (sel byte, pkt []byte, ok bool) {
	lines := bytes.SplitN(b, []byte("\n"), 4)
	if len(lines) < 3 || string(lines[0]) != "go test fuzz v1" {
		return 0, nil, false
	}
	s, err := strconv.Unquote(string(bytes.TrimSuffix(bytes.TrimPrefix(lines[1], []byte("byte(")), []byte(")"))))
	if err != nil || len(s) != 1 {
		return 0, nil, false
	}
	p, err := strconv.Unquote(string(bytes.TrimSuffix(bytes.TrimPrefix(lines[2], []byte("[]byte(")), []byte(")"))))
	if err != nil {
		return 0, nil, false
	}
	return s[0], []byte(p), true
}
