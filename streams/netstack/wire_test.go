package netstack

import (
	"context"
	"encoding/binary"
	"io"
	"sync"
	"testing"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// checksum is the Internet checksum of a TCP segment with the IPv6
// pseudo-header of RFC 8200 §8.1 (source, destination, upper-layer
// length, next header), over the checksum field as sent: 0xffff or 0 when
// the segment is correct.
func checksum(src, dst wire.HIT, seg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(seg)))
	l[7] = protoTCP
	add(l[:])
	add(seg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// TestSegmentsOnTheWire: what reaches the Link is real TCP between the
// HITs: a correct checksum over the HIT pseudo-header (so a decrypted
// capture, and a HIP implementation that checks it, see valid TCP),
// segments within the wire budget of the MTU, and nothing but TCP.
func TestSegmentsOnTheWire(t *testing.T) {
	for _, tt := range []struct {
		mtu, maxSeg int
	}{{0, 1288}, {1500, 1460}} {
		n := newFakeNet()
		nodes := newNodes(t, n, 2, Config{MTU: tt.mtu})
		a, b := nodes[0], nodes[1]
		var mu sync.Mutex
		var segs, bad, big, longest int
		a.link.setTap(func(dst wire.HIT, seg []byte) bool {
			mu.Lock()
			defer mu.Unlock()
			segs++
			if checksum(a.local, dst, seg) != 0xffff {
				bad++
			}
			if len(seg) > tt.maxSeg {
				big++
			}
			longest = max(longest, len(seg))
			return true
		})
		l, err := b.Listen(0)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if c, err := l.Accept(); err == nil {
				io.Copy(io.Discard, c)
				c.Close()
			}
		}()
		c, err := a.Dial(context.Background(), b.local, l.Addr().(*overlay.Addr).Port)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(make([]byte, 256<<10))
		c.Close()
		<-done
		l.Close()
		mu.Lock()
		if segs == 0 || bad != 0 || big != 0 || longest < tt.maxSeg-tcpMaxOptions {
			t.Errorf("MTU %d: %d segments, %d with a bad checksum, %d longer than %d, longest %d",
				tt.mtu, segs, bad, big, tt.maxSeg, longest)
		}
		mu.Unlock()
		for _, nd := range nodes {
			st := nd.Stats()
			if st.DroppedMalformed+st.DroppedExtension+st.DroppedProtocol+st.DroppedSource != 0 {
				t.Errorf("netstack sent something other than TCP: %+v", st)
			}
		}
	}
}
