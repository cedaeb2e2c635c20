package overlay

import (
	"bytes"
	"context"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/mitm"
)

// TestOpportunisticForgedR1: in an opportunistic exchange (ConnectAddr)
// an R1 that anyone on the path sends from the dialled address, naming
// another host with a signature that does not verify, is dropped; the
// genuine R1 after it completes the exchange with the host at that
// address. Before, the forgery named the exchange's peer and the genuine
// R1 was then dropped as a stranger's.
func TestOpportunisticForgedR1(t *testing.T) {
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, nil)
	p, err := mitm.New(b.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	r1s := make(chan []byte, 1)
	p.SetHook(func(d *mitm.Datagram) mitm.Verdict {
		if t, ok := mitm.HIPType(d.Data); ok && t == mitm.TypeR1 && d.Dir == mitm.ToClient {
			select {
			case r1s <- bytes.Clone(d.Data):
				return mitm.Hold
			default:
			}
		}
		return mitm.Pass
	})
	type result struct {
		hit wire.HIT
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hit, err := a.ConnectAddr(ctx, p.Addr())
		done <- result{hit, err}
	}()
	var r1 []byte
	select {
	case r1 = <-r1s:
	case <-time.After(5 * time.Second):
		t.Fatal("no R1")
	}
	forged := bytes.Clone(r1)
	forged[wire.NonESPMarkerLen+8+15] ^= 0x5a // another Sender's HIT
	forged[len(forged)-20] ^= 0xff            // inside HIP_SIGNATURE_2
	if err := p.Inject(mitm.ToClient, forged); err != nil {
		t.Fatal(err)
	}
	rejected := func() uint64 { return a.Stats().Drops.ControlRejected }
	waitFor(t, 5*time.Second, "the forged R1 handled", func() bool { return rejected() > 0 })
	p.Release()
	r := <-done
	if r.err != nil || r.hit != b.HIT() {
		t.Fatalf("ConnectAddr: %v, %v; want %v", r.hit, r.err, b.HIT())
	}
	a.Close() // while the proxy still carries its CLOSE
}
