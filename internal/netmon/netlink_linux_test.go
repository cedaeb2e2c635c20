package netmon

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// The filter's copies of the kernel's constants (addrs.go) are the
// kernel's.
func TestKernelConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		ours, sys uint32
	}{
		{"IFA_F_DADFAILED", flagDADFailed, unix.IFA_F_DADFAILED},
		{"IFA_F_DEPRECATED", flagDeprecated, unix.IFA_F_DEPRECATED},
		{"IFA_F_TENTATIVE", flagTentative, unix.IFA_F_TENTATIVE},
		{"RT_SCOPE_HOST", scopeHost, unix.RT_SCOPE_HOST},
	} {
		if c.ours != c.sys {
			t.Errorf("%s: ours %#x, golang.org/x/sys/unix %#x", c.name, c.ours, c.sys)
		}
	}
}

// nlmsg builds one netlink message: header and payload, padded to 4.
func nlmsg(typ, flags uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN, align4(unix.NLMSG_HDRLEN+len(payload)))
	binary.NativeEndian.PutUint32(b[0:], uint32(unix.NLMSG_HDRLEN+len(payload)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b = append(b, payload...)
	return append(b, make([]byte, align4(len(b))-len(b))...)
}

// rtattr builds one route attribute, padded to 4.
func rtattr(typ uint16, v []byte) []byte {
	b := make([]byte, 4, align4(4+len(v)))
	binary.NativeEndian.PutUint16(b[0:], uint16(4+len(v)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, v...)
	return append(b, make([]byte, align4(len(b))-len(b))...)
}

// ifinfomsg builds a link's RTM_NEWLINK payload.
func ifinfomsg(index int32, flags uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	binary.NativeEndian.PutUint32(b[8:], flags)
	return append(b, rtattr(unix.IFLA_IFNAME, []byte("d0\x00"))...)
}

// ifaddrmsg builds an address's RTM_NEWADDR payload with its attributes.
func ifaddrmsg(family, flags, scope uint8, index uint32, attrs ...[]byte) []byte {
	b := []byte{family, 24, flags, scope, 0, 0, 0, 0}
	binary.NativeEndian.PutUint32(b[4:], index)
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func TestParseDump(t *testing.T) {
	const upRunning = unix.IFF_UP | unix.IFF_RUNNING
	var links []byte
	links = append(links, nlmsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, 7, ifinfomsg(1, upRunning|unix.IFF_LOOPBACK))...)
	links = append(links, nlmsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, 7, ifinfomsg(2, upRunning))...)
	links = append(links, nlmsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, 7, ifinfomsg(3, unix.IFF_UP))...) // no carrier
	links = append(links, nlmsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, 7, ifinfomsg(4, 0))...)           // down
	lm, err := parseMessages(links)
	if err != nil {
		t.Fatal(err)
	}
	if len(lm) != 4 || lm[0].seq != 7 || lm[0].typ != unix.RTM_NEWLINK || lm[0].flags != unix.NLM_F_MULTI {
		t.Fatalf("parsed link messages: %+v", lm)
	}
	l := parseLinks(lm)
	want := map[uint32]link{1: {up: true, loopback: true}, 2: {up: true}, 3: {}, 4: {}}
	for i, w := range want {
		if l[i] != w {
			t.Errorf("link %d: %+v, want %+v", i, l[i], w)
		}
	}

	v4 := func(s string) []byte { a := netip.MustParseAddr(s).As4(); return a[:] }
	v6 := func(s string) []byte { a := netip.MustParseAddr(s).As16(); return a[:] }
	var dump []byte
	for _, p := range [][]byte{
		ifaddrmsg(unix.AF_INET, 0x80, unix.RT_SCOPE_HOST, 1, rtattr(unix.IFA_ADDRESS, v4("127.0.0.1")), rtattr(unix.IFA_LOCAL, v4("127.0.0.1"))),
		ifaddrmsg(unix.AF_INET, 0x80, 0, 2, rtattr(unix.IFA_ADDRESS, v4("10.250.0.1")), rtattr(unix.IFA_LOCAL, v4("10.250.0.1")), rtattr(unix.IFA_FLAGS, u32(0x80))),
		// Point-to-point: IFA_ADDRESS is the peer, IFA_LOCAL ours.
		ifaddrmsg(unix.AF_INET, 0, 0, 2, rtattr(unix.IFA_ADDRESS, v4("10.250.9.9")), rtattr(unix.IFA_LOCAL, v4("10.250.0.2"))),
		// IFA_FLAGS carries what the 8-bit field cannot; it wins.
		ifaddrmsg(unix.AF_INET6, 0, 0, 2, rtattr(unix.IFA_ADDRESS, v6("fd00:250::1")), rtattr(unix.IFA_FLAGS, u32(unix.IFA_F_TENTATIVE|unix.IFA_F_MANAGETEMPADDR))),
		ifaddrmsg(unix.AF_INET6, unix.IFA_F_DEPRECATED, 0, 2, rtattr(unix.IFA_ADDRESS, v6("fd00:250::2"))),
		ifaddrmsg(unix.AF_INET6, 0, 0, 2, rtattr(unix.IFA_ADDRESS, v6("fd00:250::3"))),
		ifaddrmsg(unix.AF_INET, 0, 0, 3, rtattr(unix.IFA_LOCAL, v4("10.250.0.3"))), // link without carrier
		ifaddrmsg(unix.AF_INET, 0, 0, 4, rtattr(unix.IFA_LOCAL, v4("10.250.0.4"))), // link down
		ifaddrmsg(unix.AF_INET, 0, 0, 9, rtattr(unix.IFA_LOCAL, v4("10.250.0.9"))), // link not in the dump
		ifaddrmsg(unix.AF_INET, 0, 0, 2),                                          // no address: skipped
		ifaddrmsg(unix.AF_INET, 0, 0, 2, rtattr(unix.IFA_LOCAL, []byte{10, 250})), // malformed address: skipped
	} {
		dump = append(dump, nlmsg(unix.RTM_NEWADDR, unix.NLM_F_MULTI, 8, p)...)
	}
	dump = append(dump, nlmsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 8, u32(0))...)
	am, err := parseMessages(dump)
	if err != nil {
		t.Fatal(err)
	}
	if last := am[len(am)-1]; last.typ != unix.NLMSG_DONE {
		t.Fatalf("last message type %d, want NLMSG_DONE", last.typ)
	}
	list := parseAddrs(am, l)
	wantList := []ifAddr{
		{Addr: netip.MustParseAddr("127.0.0.1"), Up: true, Loopback: true, Flags: 0x80, Scope: unix.RT_SCOPE_HOST},
		{Addr: netip.MustParseAddr("10.250.0.1"), Up: true, Flags: 0x80},
		{Addr: netip.MustParseAddr("10.250.0.2"), Up: true},
		{Addr: netip.MustParseAddr("fd00:250::1"), Up: true, Flags: unix.IFA_F_TENTATIVE | unix.IFA_F_MANAGETEMPADDR},
		{Addr: netip.MustParseAddr("fd00:250::2"), Up: true, Flags: unix.IFA_F_DEPRECATED},
		{Addr: netip.MustParseAddr("fd00:250::3"), Up: true},
		{Addr: netip.MustParseAddr("10.250.0.3")},
		{Addr: netip.MustParseAddr("10.250.0.4")},
		{Addr: netip.MustParseAddr("10.250.0.9")},
	}
	if !slices.Equal(list, wantList) {
		t.Fatalf("parseAddrs:\n got %+v\nwant %+v", list, wantList)
	}
	if got, want := usableSet(list), addrs("10.250.0.1", "10.250.0.2", "fd00:250::3"); !slices.Equal(got, want) {
		t.Fatalf("usable = %v, want %v", got, want)
	}
}

func TestParseMessagesMalformed(t *testing.T) {
	good := nlmsg(unix.RTM_NEWLINK, 0, 1, ifinfomsg(1, 0))
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"length past the end", append(slices.Clone(good[:4]), good[4:len(good)-4]...)},
		{"length shorter than a header", func() []byte {
			b := slices.Clone(good)
			binary.NativeEndian.PutUint32(b, 8)
			return b
		}()},
	} {
		if _, err := parseMessages(tc.b); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	// Trailing bytes shorter than a header are ignored; an attribute that
	// runs past its message stops the walk.
	if msgs, err := parseMessages(append(slices.Clone(good), 0, 0, 0, 0)); err != nil || len(msgs) != 1 {
		t.Errorf("trailing bytes: %d messages, %v", len(msgs), err)
	}
	n := 0
	attrs([]byte{8, 0, 1, 0, 1, 2, 3, 4, 200, 0, 2, 0, 1}, func(uint16, []byte) { n++ })
	if n != 1 {
		t.Errorf("attrs visited %d attributes, want 1 before the malformed one", n)
	}
}

// The netlink dump and package net agree about this host: every address
// on an interface that is up according to package net is in the dump.
func TestDumperAgreesWithNet(t *testing.T) {
	d, err := newDumper()
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	dumped, err := d.read()
	if err != nil {
		t.Fatal(err)
	}
	fromNet, err := readInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range fromNet {
		i := slices.IndexFunc(dumped, func(b ifAddr) bool { return b.Addr == a.Addr.WithZone("") })
		if i < 0 {
			t.Errorf("%v (package net) not in the netlink dump %+v", a.Addr, dumped)
			continue
		}
		if dumped[i].Up != a.Up || dumped[i].Loopback != a.Loopback {
			t.Errorf("%v: dump says %+v, package net %+v", a.Addr, dumped[i], a)
		}
	}
	// Reading twice gives the same set (sequence numbers, buffer reuse).
	again, err := d.read()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(usableSet(dumped), usableSet(again)) {
		t.Fatalf("two reads differ: %v, %v", usableSet(dumped), usableSet(again))
	}
}
