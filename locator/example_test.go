package locator_test

import (
	"fmt"
	"net/netip"
	"time"

	"hipnet.dev/locator"
)

// Example shows the calls a caller such as overlay makes for one peer:
// the association runs over a, its peer announces b, a goes dark while we
// send, and the traffic moves to b.
func Example() {
	a := netip.MustParseAddrPort("192.0.2.1:10500")
	b := netip.MustParseAddrPort("198.51.100.7:10500")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := locator.New(locator.Config{})
	do := func(ds []locator.Decision) {
		for _, d := range ds {
			fmt.Println(now.Format("05.000"), d)
		}
	}

	do(s.Configure(now, a))   // before the base exchange: send I1 to a
	do(s.Established(now, a)) // the base exchange completed over a
	// A second address of the peer (from AddPeer here; ApplyLocatorSet
	// for the peer's LOCATOR_SET): it is probed, and the probe answered.
	do(s.Configure(now, b))
	now = now.Add(20 * time.Millisecond)
	do(s.Verified(now, b))

	// We send on a; nothing comes back from it any more.
	s.Sent(now, a)
	for i := 0; i < 100; i++ {
		now = now.Add(10 * time.Millisecond)
		if c, _ := s.Current(); c.Addr == a {
			s.Sent(now, a)
		}
		if d := s.Deadline(); !d.After(now) {
			do(s.HandleTimeout(now))
		}
	}
	c, _ := s.Current()
	fmt.Println("current", c)
	// Output:
	// 00.000 switch invalid AddrPort -> 192.0.2.1:10500 (direct, initial)
	// 00.000 probe 198.51.100.7:10500 verify #1 (direct)
	// 00.270 probe 192.0.2.1:10500 liveness #1 (direct)
	// 00.470 probe 192.0.2.1:10500 liveness #2 (direct)
	// 00.670 probe 192.0.2.1:10500 liveness #3 (direct)
	// 00.870 switch 192.0.2.1:10500 -> 198.51.100.7:10500 (direct, failed)
	// current 198.51.100.7:10500 direct active
}
