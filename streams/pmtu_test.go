package streams

import (
	"testing"

	"github.com/quic-go/quic-go"

	"hipnet.dev/overlay"
)

var _ pathSizer = (*overlay.InnerConn)(nil)

// TestPacketSizeFollowsPath: each end's QUIC packets are as large as the
// PacketConn says its path carries, within QUIC's bounds, in both
// directions of a bulk echo; a PacketConn that cannot say gets
// PacketSize, and Config.QUIC's InitialPacketSize overrides the path.
func TestPacketSizeFollowsPath(t *testing.T) {
	cases := []struct {
		name  string
		path  int64
		fixed uint16
		want  int64
	}{
		{"path not known", 0, 0, PacketSize},
		{"small path", 1300, 0, 1300},
		{"large path", 9000, 0, maxPacketSize},
		{"below QUIC's minimum", 1100, 0, minPacketSize},
		{"fixed by the user", 9000, 1250, 1250},
	}
	ka, kb, _ := testIdentities(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*Config)
			if tc.fixed != 0 {
				opts = append(opts, func(c *Config) { c.QUIC = &quic.Config{InitialPacketSize: tc.fixed} })
			}
			a, b := newPair(t, ka, kb, opts...)
			a.pc.path.Store(tc.path)
			b.pc.path.Store(tc.path)
			echoOn(t, b, 80)
			if err := roundTrip(t, a.m, b.hit, 80, randomBytes(256<<10)); err != nil {
				t.Fatal(err)
			}
			if got := a.pc.largest.Load(); got != tc.want {
				t.Errorf("client's largest datagram: %d octets; want %d", got, tc.want)
			}
			if got := b.pc.largest.Load(); got != tc.want {
				t.Errorf("server's largest datagram: %d octets; want %d", got, tc.want)
			}
		})
	}
}
