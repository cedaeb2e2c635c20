package hipnet

import (
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/mitm"
)

// The answer to an address check (RFC 8046 §5.4) is an UPDATE with no SEQ:
// nothing in it tells a replay from a fresh one but its nonce. These tests
// replay one recorded answer, as an attacker on the path can.

// echoAnswerRecorded returns a rig of two paths whose stream flows, the
// second verified, and the first answer to one of the client's address
// checks recorded on it: a SEQ-less UPDATE carrying ECHO_RESPONSE_SIGNED.
func echoAnswerRecorded(t *testing.T) (*mobilityRig, []byte) {
	t.Helper()
	r := newMobilityRig(t, 2, Config{})
	k := r.stream(t)
	verified(t, r.client, r.server.HIT(), r.paths[1].Addr(), 5*time.Second)
	flows(t, k, 64<<10, 5*time.Second)
	for _, d := range r.paths[1].Recorded() {
		if d.Dir != mitm.ToClient || d.Kind() != mitm.KindHIP {
			continue
		}
		pkt, err := wire.ParsePacket(d.Data[4:])
		if err != nil || pkt.Type() != wire.UPDATE {
			continue
		}
		_, seq := pkt.Param(wire.ParamSeq)
		if _, echo := pkt.Param(wire.ParamEchoResponseSigned); echo && !seq {
			return r, d.Data
		}
	}
	t.Fatal("no answer to an address check recorded")
	return nil, nil
}

// TestReplayedEchoAnswerNoSignOfLife: once the current path dies, a
// recorded answer replayed from its address a few times a second does not
// keep it current: the client fails over to the verified standby.
func TestReplayedEchoAnswerNoSignOfLife(t *testing.T) {
	r, echo := echoAnswerRecorded(t)
	sh := r.server.HIT()
	r.paths[0].Blackhole(true)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(150 * time.Millisecond) // under the 10/s the association takes
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				r.paths[0].Inject(mitm.ToClient, echo) // from the dead path's address
			}
		}
	}()
	defer func() { close(stop); <-done }()
	ok := waitUntil(4*time.Second, func() bool {
		l, ok := currentLocator(r.client, sh)
		return ok && l.Addr == r.paths[1].Addr()
	})
	if !ok {
		p, _ := peerOf(r.client, sh)
		t.Fatalf("no failover while a recorded answer (%d octets) was replayed on the dead path: %+v", len(echo), p.Locators)
	}
}

// TestReplayedEchoAnswerNoProbes: the recorded answer replayed from a
// third address draws nothing there (it was taken for a sign of a new
// address of the peer's, which was then probed: an amplifier).
func TestReplayedEchoAnswerNoProbes(t *testing.T) {
	r, echo := echoAnswerRecorded(t)
	third, err := mitm.Listen(thirdAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetRecord(true)
	for range 3 {
		third.Send(r.client.LocalAddr(), echo)
		time.Sleep(1100 * time.Millisecond)
	}
	sent, recv := third.Counts()
	if recv.Octets > 0 {
		t.Errorf("the client sent %d octets to a third address that replayed %d octets of a recorded answer", recv.Octets, sent.Octets)
	}
}
