package mitm

import (
	"bytes"
	"sync/atomic"
	"testing"
)

func TestBlackhole(t *testing.T) {
	target, client := udp(t, lo), udp(t, lo)
	p := newProxy(t, addrOf(target))
	var hooked atomic.Int64
	p.SetHook(func(*Datagram) Verdict { hooked.Add(1); return Pass })
	send(t, client, p.Addr(), "up")
	expect(t, target, "up", p.Addr())

	p.Blackhole(true)
	if !p.Down(ToTarget) || !p.Down(ToClient) {
		t.Fatal("a black hole with a direction up")
	}
	send(t, client, p.Addr(), "lost to the target")
	send(t, target, p.Addr(), "lost to the client")
	expectNone(t, target)
	expectNone(t, client)
	eventually(t, "both drops counted", func() bool {
		return p.Counts(ToTarget).Dropped == 1 && p.Counts(ToClient).Dropped == 1
	})
	// The test's own datagrams still go.
	if err := p.Inject(ToClient, []byte("injected")); err != nil {
		t.Fatal(err)
	}
	expect(t, client, "injected", p.Addr())

	p.Blackhole(false)
	send(t, client, p.Addr(), "up again")
	expect(t, target, "up again", p.Addr())
	send(t, target, p.Addr(), "back")
	expect(t, client, "back", p.Addr())
	if n := hooked.Load(); n != 3 {
		t.Fatalf("the hook saw %d datagrams, want the 3 that passed", n)
	}
	lost := p.Select(func(d *Datagram) bool { return !d.Injected && bytes.HasPrefix(d.Data, []byte("lost")) })
	if len(lost) != 2 || lost[0].Action != ActionDrop || lost[1].Action != ActionDrop {
		t.Fatalf("records of the black hole %v", lost)
	}
	if c := p.Counts(ToTarget); c.Datagrams != 3 || c.Forwarded != 2 || c.Dropped != 1 {
		t.Fatalf("to-target counts %+v", c)
	}
}

func TestDropDirection(t *testing.T) {
	target, client := udp(t, lo), udp(t, lo)
	p := newProxy(t, addrOf(target))
	// A hook the test set stays in force for what the path lets through.
	p.SetHook(func(d *Datagram) Verdict {
		if string(d.Data) == "tamper" {
			return Replace([]byte("tampered"))
		}
		return Pass
	})
	send(t, client, p.Addr(), "hello")
	expect(t, target, "hello", p.Addr())

	p.DropDirection(ToClient, true)
	if p.Down(ToTarget) || !p.Down(ToClient) {
		t.Fatal("wrong direction down")
	}
	send(t, client, p.Addr(), "tamper")
	expect(t, target, "tampered", p.Addr())
	send(t, target, p.Addr(), "answer")
	expectNone(t, client)

	// The other way round, also after a Rebind.
	na, err := p.Rebind()
	if err != nil {
		t.Fatal(err)
	}
	p.DropDirection(ToClient, false)
	p.DropDirection(ToTarget, true)
	send(t, client, p.Addr(), "request")
	expectNone(t, target)
	send(t, target, na, "answer")
	expect(t, client, "answer", p.Addr())

	p.DropDirection(ToTarget, false)
	send(t, client, p.Addr(), "request")
	expect(t, target, "request", na)
	if ct, cc := p.Counts(ToTarget), p.Counts(ToClient); ct.Dropped != 1 || cc.Dropped != 1 || ct.Forwarded != 3 || cc.Forwarded != 1 {
		t.Fatalf("counts %+v %+v", ct, cc)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("DropDirection(ToSocket) did not panic")
		}
	}()
	p.DropDirection(ToSocket, true)
}
