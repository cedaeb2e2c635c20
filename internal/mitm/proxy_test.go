package mitm

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

var lo = netip.MustParseAddr("127.0.0.1")

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

// echoTarget is a Socket that sends every datagram back to its sender.
func echoTarget(t *testing.T) *Socket {
	t.Helper()
	s, err := Listen(lo)
	if err != nil {
		t.Fatal(err)
	}
	s.SetHandler(func(d Datagram) { _ = s.Send(d.Src, d.Data) })
	t.Cleanup(func() { s.Close() })
	return s
}

func listen(t *testing.T, a netip.Addr) *Socket {
	t.Helper()
	s, err := Listen(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newProxy(t *testing.T, target netip.AddrPort) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func payloads(ds []Datagram) []string {
	var out []string
	for _, d := range ds {
		out = append(out, string(d.Data))
	}
	return out
}

func TestProxyForwardsRecordsAndCounts(t *testing.T) {
	target := echoTarget(t)
	p := newProxy(t, target.Addr())
	client := listen(t, lo)
	for _, m := range []string{"one", "two", "three"} {
		if err := client.Send(p.Addr(), []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "three echoes", func() bool { return len(client.Received()) == 3 })
	got := client.Received()
	for i, m := range []string{"one", "two", "three"} {
		if string(got[i].Data) != m || got[i].Src != p.Addr() || got[i].Dir != ToSocket {
			t.Fatalf("echo %d: %v %q", i, got[i], got[i].Data)
		}
	}
	if c, ok := p.Client(); !ok || c != client.Addr() {
		t.Fatalf("client %v %v, want %v", c, ok, client.Addr())
	}
	rec := p.Recorded()
	if len(rec) != 6 {
		t.Fatalf("%d recorded, want 6: %v", len(rec), rec)
	}
	var toT, toC int
	for i, d := range rec {
		if d.Seq != i || d.Time.IsZero() || d.Injected || d.Action != ActionPass {
			t.Fatalf("record %d: %v", i, d)
		}
		switch d.Dir {
		case ToTarget:
			toT++
			if d.Src != client.Addr() || d.Dst != target.Addr() {
				t.Fatalf("to-target %v", d)
			}
		case ToClient:
			toC++
			if d.Src != target.Addr() || d.Dst != client.Addr() {
				t.Fatalf("to-client %v", d)
			}
		}
	}
	if toT != 3 || toC != 3 {
		t.Fatalf("directions %d/%d", toT, toC)
	}
	ct, cc := p.Counts(ToTarget), p.Counts(ToClient)
	if ct.Datagrams != 3 || ct.Octets != 11 || ct.Forwarded != 3 || cc.Datagrams != 3 || cc.Octets != 11 || cc.Forwarded != 3 {
		t.Fatalf("counts %+v %+v", ct, cc)
	}
	sent, recv := client.Counts()
	if sent.Datagrams != 3 || sent.Octets != 11 || recv.Datagrams != 3 || recv.Octets != 11 {
		t.Fatalf("socket counts %+v %+v", sent, recv)
	}
}

func TestProxyVerdicts(t *testing.T) {
	target := listen(t, lo)
	p := newProxy(t, target.Addr())
	client := listen(t, lo)
	p.SetHook(func(d *Datagram) Verdict {
		switch {
		case bytes.HasPrefix(d.Data, []byte("drop")):
			return Drop
		case bytes.HasPrefix(d.Data, []byte("hold")):
			return Hold
		case bytes.HasPrefix(d.Data, []byte("tamper")):
			d.Data[0] ^= 0xff // the hook's own copy
			return Replace(d.Data)
		}
		return Pass
	})
	for _, m := range []string{"hold-1", "drop", "tamper", "hold-2", "pass"} {
		if err := client.Send(p.Addr(), []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "two forwarded", func() bool { return len(target.Received()) == 2 })
	eventually(t, "two held", func() bool { return len(p.Held()) == 2 })
	got := payloads(target.Received())
	if got[0] != "\x8bamper" || got[1] != "pass" {
		t.Fatalf("forwarded %q", got)
	}
	if h := payloads(p.Held()); h[0] != "hold-1" || h[1] != "hold-2" {
		t.Fatalf("held %q", h)
	}
	// The record keeps what arrived, with the verdict.
	rec := p.Recorded()
	want := []struct {
		data string
		a    Action
	}{{"hold-1", ActionHold}, {"drop", ActionDrop}, {"tamper", ActionReplace}, {"hold-2", ActionHold}, {"pass", ActionPass}}
	for i, w := range want {
		if string(rec[i].Data) != w.data || rec[i].Action != w.a {
			t.Fatalf("record %d: %q %v, want %q %v", i, rec[i].Data, rec[i].Action, w.data, w.a)
		}
	}
	if n := p.Release(); n != 2 {
		t.Fatalf("released %d", n)
	}
	eventually(t, "released ones", func() bool { return len(target.Received()) == 4 })
	if got := payloads(target.Received()); got[2] != "hold-1" || got[3] != "hold-2" {
		t.Fatalf("release order %q", got)
	}
	c := p.Counts(ToTarget)
	if c.Datagrams != 5 || c.Dropped != 1 || c.Held != 2 || c.Forwarded != 4 {
		t.Fatalf("counts %+v", c)
	}
	// Discard drops what is held.
	client.Send(p.Addr(), []byte("hold-3"))
	eventually(t, "held again", func() bool { return len(p.Held()) == 1 })
	if n := p.Discard(); n != 1 || len(p.Held()) != 0 || p.Counts(ToTarget).Dropped != 2 {
		t.Fatalf("discard %d, counts %+v", n, p.Counts(ToTarget))
	}
}

func TestProxyInject(t *testing.T) {
	target := echoTarget(t)
	p := newProxy(t, target.Addr())
	if err := p.Inject(ToClient, []byte("x")); err == nil {
		t.Fatal("inject to an unknown client succeeded")
	}
	client := listen(t, lo)
	client.Send(p.Addr(), []byte("hello"))
	eventually(t, "echo", func() bool { return len(client.Received()) == 1 })

	// From the proxy, both ways: the target answers the proxy, which
	// forwards to the client.
	if err := p.Inject(ToTarget, []byte("replayed")); err != nil {
		t.Fatal(err)
	}
	if err := p.Inject(ToClient, []byte("forged")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "injected and echoed", func() bool { return len(client.Received()) == 3 })
	got := payloads(client.Received())
	if !(got[1] == "forged" && got[2] == "replayed" || got[1] == "replayed" && got[2] == "forged") {
		t.Fatalf("client got %q", got)
	}

	// From a third address: the answer goes back there, not to the client.
	third := netip.MustParseAddr("127.0.0.2")
	s, err := p.InjectFrom(third, target.Addr(), []byte("from-elsewhere"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr().Addr() != third {
		t.Fatalf("socket at %v", s.Addr())
	}
	eventually(t, "answer at the third address", func() bool { return len(s.Received()) == 1 })
	if d := s.Received()[0]; string(d.Data) != "from-elsewhere" || d.Src != target.Addr() {
		t.Fatalf("third address got %v", d)
	}
	if s2, _ := p.InjectFrom(third, target.Addr(), []byte("again")); s2 != s {
		t.Fatal("a second InjectFrom opened another socket")
	}
	eventually(t, "second answer", func() bool { return len(s.Received()) == 2 })
	time.Sleep(20 * time.Millisecond)
	if n := len(client.Received()); n != 3 {
		t.Fatalf("client got %d datagrams, want 3", n)
	}

	var inj []Datagram
	for _, d := range p.Recorded() {
		if d.Injected {
			inj = append(inj, d)
		}
	}
	if len(inj) != 4 || inj[0].Dir != ToTarget || inj[0].Src != p.Addr() || inj[1].Dir != ToClient ||
		inj[2].Src != s.Addr() || inj[2].Dir != ToTarget || inj[2].Dst != target.Addr() {
		t.Fatalf("injected records %v", inj)
	}
	if c := p.Counts(ToTarget); c.Injected != 3 || c.InjectedOctets != uint64(len("replayed")+len("from-elsewhere")+len("again")) {
		t.Fatalf("to-target counts %+v", c)
	}
	if c := p.Counts(ToClient); c.Injected != 1 {
		t.Fatalf("to-client counts %+v", c)
	}
}

func TestLoopbackOnly(t *testing.T) {
	if _, err := New(netip.MustParseAddrPort("192.0.2.1:10500")); err == nil {
		t.Fatal("proxy to a non-loopback target")
	}
	if _, err := Listen(netip.MustParseAddr("192.0.2.1")); err == nil {
		t.Fatal("socket on a non-loopback address")
	}
	s := listen(t, lo)
	if err := s.Send(netip.MustParseAddrPort("192.0.2.1:9"), []byte("x")); err == nil {
		t.Fatal("send to a non-loopback address")
	}
	target := listen(t, lo)
	p := newProxy(t, target.Addr())
	if _, err := p.InjectFrom(lo, netip.MustParseAddrPort("192.0.2.1:9"), []byte("x")); err == nil {
		t.Fatal("inject to a non-loopback address")
	}
	// A node listening on ":0" reports the unspecified address.
	p2, err := New(netip.AddrPortFrom(netip.IPv4Unspecified(), target.Addr().Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if p2.Target() != target.Addr() {
		t.Fatalf("target %v", p2.Target())
	}
}

func TestCloseStopsEverything(t *testing.T) {
	base := runtime.NumGoroutine()
	target, err := Listen(lo)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(target.Addr())
	if err != nil {
		t.Fatal(err)
	}
	client, _ := Listen(lo)
	client.Send(p.Addr(), []byte("x"))
	p.SetHook(func(*Datagram) Verdict { return Hold })
	client.Send(p.Addr(), []byte("held"))
	eventually(t, "held", func() bool { return len(p.Held()) >= 1 })
	if _, err := p.InjectFrom(netip.MustParseAddr("127.0.0.3"), target.Addr(), []byte("y")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.Inject(ToTarget, []byte("z")); err == nil {
		t.Fatal("inject after Close")
	}
	if _, err := p.InjectFrom(lo, target.Addr(), []byte("z")); err == nil {
		t.Fatal("InjectFrom after Close")
	}
	target.Close()
	client.Close()
	eventually(t, "goroutines to stop", func() bool { return runtime.NumGoroutine() <= base })
}

func TestRecordIsBounded(t *testing.T) {
	var r recorder
	for i := 0; i < MaxRecorded+10; i++ {
		d := Datagram{Data: []byte{byte(i)}}
		if ok := r.add(&d); ok != (i < MaxRecorded) || d.Seq != i {
			t.Fatalf("add %d: %v, seq %d", i, ok, d.Seq)
		}
	}
	if len(r.snapshot()) != MaxRecorded {
		t.Fatalf("kept %d", len(r.snapshot()))
	}
	// A socket with recording off counts but keeps nothing.
	target := echoTarget(t)
	s := listen(t, lo)
	s.SetRecord(false)
	var handled int
	done := make(chan struct{}, 8)
	s.SetHandler(func(d Datagram) {
		handled++
		done <- struct{}{}
	})
	for range 3 {
		s.Send(target.Addr(), []byte("abc"))
		<-done
	}
	if _, recv := s.Counts(); recv.Datagrams != 3 || recv.Octets != 9 || recv.Unrecorded != 3 || len(s.Received()) != 0 || handled != 3 {
		t.Fatalf("counts %+v, %d recorded, %d handled", recv, len(s.Received()), handled)
	}
}

func TestClassify(t *testing.T) {
	hip := make([]byte, 4+40)
	hip[4+2] = TypeI2 | 0x80 // the fixed bit is not part of the type
	esp := []byte{0, 0, 1, 2, 0, 0, 0, 1, 0xaa}
	stun := make([]byte, 20)
	binary.BigEndian.PutUint16(stun, 0x0001)
	binary.BigEndian.PutUint32(stun[4:], stunCookie)
	cases := []struct {
		b    []byte
		kind Kind
	}{
		{nil, KindOther}, {[]byte{1, 2, 3}, KindOther}, {make([]byte, 20), KindOther},
		{hip, KindHIP}, {esp, KindESP}, {stun, KindSTUN},
	}
	for _, c := range cases {
		if k := Classify(c.b); k != c.kind {
			t.Errorf("Classify(% x) = %v, want %v", c.b, k, c.kind)
		}
	}
	if typ, ok := HIPType(hip); !ok || typ != TypeI2 || TypeName(typ) != "I2" {
		t.Fatalf("HIPType %d %v", typ, ok)
	}
	if _, ok := HIPType(esp); ok {
		t.Fatal("ESP has a HIP type")
	}
	if spi, ok := SPI(esp); !ok || spi != 0x102 {
		t.Fatalf("SPI %d %v", spi, ok)
	}
	if _, ok := SPI(hip); ok {
		t.Fatal("HIP has an SPI")
	}
	d := Datagram{Data: hip}
	if typ, ok := d.HIPType(); !ok || typ != TypeI2 || d.Kind() != KindHIP {
		t.Fatal("Datagram.HIPType")
	}
}
