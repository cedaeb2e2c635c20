package netmon

import (
	"net/netip"
	"slices"
	"testing"
)

// up is an address on an interface that is up and running, with no flags.
func up(s string) ifAddr { return ifAddr{Addr: netip.MustParseAddr(s), Up: true} }

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestUsable(t *testing.T) {
	with := func(a ifAddr, f func(*ifAddr)) ifAddr { f(&a); return a }
	cases := []struct {
		name string
		a    ifAddr
		want bool
	}{
		{"IPv4 global", up("192.0.2.1"), true},
		{"IPv4 private", up("10.250.0.1"), true},
		{"IPv6 ULA", up("fd00:250::1"), true},
		{"IPv6 global", up("2001:db8::1"), true},
		{"IPv4-mapped IPv6", up("::ffff:192.0.2.1"), true},
		{"secondary and permanent flags do not matter", with(up("10.250.0.2"), func(a *ifAddr) { a.Flags = 0x01 | 0x80 }), true},
		{"optimistic DAD is usable", with(up("fd00:250::2"), func(a *ifAddr) { a.Flags = 0x04 }), true},
		{"link scope of a global-looking address is usable", with(up("10.250.0.3"), func(a *ifAddr) { a.Scope = 253 }), true},

		{"zero Addr", ifAddr{Up: true}, false},
		{"IPv4 unspecified", up("0.0.0.0"), false},
		{"IPv6 unspecified", up("::"), false},
		{"IPv4 loopback", up("127.0.0.1"), false},
		{"IPv4 loopback, not 127.0.0.1", up("127.1.2.3"), false},
		{"IPv6 loopback", up("::1"), false},
		{"IPv4 link-local", up("169.254.7.7"), false},
		{"IPv6 link-local", up("fe80::1"), false},
		{"IPv6 link-local with zone", up("fe80::1%eth0"), false},
		{"IPv4 multicast", up("224.0.0.1"), false},
		{"IPv6 multicast", up("ff02::1"), false},
		{"IPv4 broadcast", up("255.255.255.255"), false},
		{"interface down", ifAddr{Addr: netip.MustParseAddr("10.250.0.1")}, false},
		{"on a loopback interface", with(up("10.250.0.1"), func(a *ifAddr) { a.Loopback = true }), false},
		{"tentative", with(up("fd00:250::1"), func(a *ifAddr) { a.Flags = flagTentative }), false},
		{"DAD failed", with(up("fd00:250::1"), func(a *ifAddr) { a.Flags = flagDADFailed }), false},
		{"DAD failed and tentative", with(up("fd00:250::1"), func(a *ifAddr) { a.Flags = flagDADFailed | flagTentative | 0x80 }), false},
		{"deprecated", with(up("10.250.0.1"), func(a *ifAddr) { a.Flags = flagDeprecated }), false},
		{"host scope", with(up("10.250.0.1"), func(a *ifAddr) { a.Scope = scopeHost }), false},
		{"nowhere scope", with(up("10.250.0.1"), func(a *ifAddr) { a.Scope = 255 }), false},
	}
	for _, tc := range cases {
		if got := usable(tc.a); got != tc.want {
			t.Errorf("%s: usable(%+v) = %v, want %v", tc.name, tc.a, got, tc.want)
		}
	}
}

func TestUsableSet(t *testing.T) {
	list := []ifAddr{
		up("fd00:250::2"),
		up("10.250.0.9"),
		up("fe80::1%eth0"),
		up("::ffff:10.250.0.1"), // the same address as the next, mapped
		up("10.250.0.1"),
		up("10.250.0.10"),
		{Addr: netip.MustParseAddr("10.250.0.7")}, // down
		up("fd00:250::1"),
		up("fd00:250::2"), // again, on another interface
		up("127.0.0.1"),
	}
	want := addrs("10.250.0.1", "10.250.0.9", "10.250.0.10", "fd00:250::1", "fd00:250::2")
	got := usableSet(list)
	if !slices.Equal(got, want) {
		t.Fatalf("usableSet = %v, want %v", got, want)
	}
	// The order of the input does not matter.
	slices.Reverse(list)
	if got := usableSet(list); !slices.Equal(got, want) {
		t.Fatalf("usableSet of the reversed list = %v, want %v", got, want)
	}
	if got := usableSet(nil); len(got) != 0 {
		t.Fatalf("usableSet(nil) = %v, want empty", got)
	}
}

func TestSameSet(t *testing.T) {
	cases := []struct {
		a, b []netip.Addr
		want bool
	}{
		{nil, nil, true},
		{nil, []netip.Addr{}, true},
		{addrs("10.250.0.1"), addrs("10.250.0.1"), true},
		{addrs("10.250.0.1", "fd00:250::1"), addrs("10.250.0.1", "fd00:250::1"), true},
		{nil, addrs("10.250.0.1"), false},
		{addrs("10.250.0.1"), addrs("10.250.0.2"), false},
		{addrs("10.250.0.1"), addrs("10.250.0.1", "10.250.0.2"), false},
		{addrs("10.250.0.1", "10.250.0.2"), addrs("10.250.0.1"), false},
	}
	for _, tc := range cases {
		if got := sameSet(tc.a, tc.b); got != tc.want {
			t.Errorf("sameSet(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
