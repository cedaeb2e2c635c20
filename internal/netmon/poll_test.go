package netmon

import (
	"testing"
	"time"
)

// Without a notifier the monitor polls its source every Poll and reports
// a change at the poll that sees it; a poll that sees the same set, or
// fails, reports nothing.
func TestPollSeesChange(t *testing.T) {
	src := newFakeSource("10.250.0.1")
	m := start(t, Options{Poll: 20 * time.Millisecond}, src, nil)
	if got, want := m.Addrs(), addrs("10.250.0.1"); !sameSet(got, want) {
		t.Fatalf("Addrs after New = %v, want %v", got, want)
	}
	src.waitReads(t, 3) // New's read and three polls
	expectNoChange(t, m, 0, addrs("10.250.0.1"), "polls of an unchanged source")

	src.set("fd00:250::1", "10.250.0.1")
	expectChange(t, m, time.Second, addrs("10.250.0.1", "fd00:250::1"), "an address added")

	src.setErr(errBoom)
	src.waitReads(t, src.readCount()+1) // two failed polls at least
	expectNoChange(t, m, 0, addrs("10.250.0.1", "fd00:250::1"), "failing polls")
	src.setErr(nil)

	src.setList([]ifAddr{up("10.250.0.1"), {Addr: addrs("fd00:250::1")[0]}})
	expectChange(t, m, time.Second, addrs("10.250.0.1"), "an interface down")
}

// readInterfaces, the polling source without netlink, reads this host:
// every address it returns is one that package net lists, and the
// loopback addresses are marked as such.
func TestReadInterfaces(t *testing.T) {
	list, err := readInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		if a.Addr.IsLoopback() && !a.Loopback {
			t.Errorf("%v: loopback address on an interface not marked loopback", a.Addr)
		}
		if a.Addr.Is4In6() {
			t.Errorf("%v: not unmapped", a.Addr)
		}
	}
	for _, a := range usableSet(list) {
		if !usable(ifAddr{Addr: a, Up: true}) {
			t.Errorf("%v in the usable set", a)
		}
	}
}
