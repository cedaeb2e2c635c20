package streams

import (
	"context"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// TestInboundConnectionsBounded: a peer that dials us many connections at
// once (each new one retires the one before, which a peer sending on it
// could keep) gets at most maxInboundPerPeer held; the rest are closed
// as they come up.
func TestInboundConnectionsBounded(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	ctx := dialCtx(t)
	var cs []*quic.Conn
	for range maxInboundPerPeer + 3 {
		c, err := b.m.quicDial(ctx, a.hit, ka.Public(), false)
		if err != nil {
			continue // refused before it came up
		}
		cs = append(cs, c)
		// A stream on it, held: the connection stays, retired or not.
		if st, err := c.OpenStreamSync(ctx); err == nil {
			writeHeader(st, 9, 9)
		}
	}
	defer func() {
		for _, c := range cs {
			c.CloseWithError(0, "")
		}
	}()
	time.Sleep(300 * time.Millisecond) // the refusals arrive
	alive := 0
	for _, c := range cs {
		if c.Context().Err() == nil {
			alive++
		}
	}
	if n := a.m.ConnectionCount(); n > maxInboundPerPeer || alive > maxInboundPerPeer {
		t.Fatalf("a holds %d connections from b, b has %d alive; want at most %d", n, alive, maxInboundPerPeer)
	}
}

// TestConnectionAttemptsLimited: a peer's connection attempts beyond the
// burst are refused before the handshake (GetConfigForClient), at the
// bucket's rate.
func TestConnectionAttemptsLimited(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	start := time.Now()
	const tries = 3 * attemptBurst
	refused := 0
	for range tries {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := b.m.quicDial(ctx, a.hit, ka.Public(), false)
		cancel()
		if err != nil {
			refused++
			continue
		}
		c.CloseWithError(0, "")
	}
	allowed := attemptBurst + int(time.Since(start).Seconds()*attemptRate) + 1
	if refused < tries-allowed || refused == tries {
		t.Fatalf("%d of %d attempts refused in %v, want at least %d and not all", refused, tries, time.Since(start), tries-allowed)
	}
}
