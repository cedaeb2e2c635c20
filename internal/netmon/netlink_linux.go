package netmon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// openSource opens, in the calling thread's network namespace, a netlink
// socket for dumps (the address reader) and one subscribed to the link
// and address groups (the notifier). Without the first it polls
// net.Interfaces; without the second it polls the dumps.
func openSource(log *slog.Logger) source {
	d, err := newDumper()
	if err != nil {
		log.Warn("netmon: no netlink socket; polling net.Interfaces, which follows the goroutine's thread, not the namespace New was called in", "err", err)
		return source{read: readInterfaces}
	}
	src := source{read: d.read, close: d.close}
	n, err := openNotifier(0)
	if err != nil {
		log.Warn("netmon: no netlink notifications; polling", "err", err)
		return src
	}
	src.notify = n
	return src
}

// groups are the netlink multicast groups the notifier joins: a link
// that goes up, down or away (RTM_NEWLINK, RTM_DELLINK), and an IPv4 or
// IPv6 address that is added, removed or changes its flags (RTM_NEWADDR,
// RTM_DELADDR: the end of duplicate address detection, deprecation).
const groups = unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR

// nlNotifier is the netlink socket subscribed to groups, as a pollable
// *os.File: Read waits in the runtime's poller, so SetReadDeadline works
// and Close makes a waiting Read return.
type nlNotifier struct{ f *os.File }

// openNotifier opens the notification socket. rcvbuf, if not 0, sets its
// receive buffer (SO_RCVBUF), which tests make small to provoke overruns.
func openNotifier(rcvbuf int) (*nlNotifier, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if rcvbuf != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("netlink SO_RCVBUF: %w", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind to link and address groups: %w", err)
	}
	return &nlNotifier{f: os.NewFile(uintptr(fd), "netlink-route")}, nil
}

// Read returns errOverrun when the kernel dropped messages for this socket
// (ENOBUFS).
func (n *nlNotifier) Read(p []byte) (int, error) {
	k, err := n.f.Read(p)
	if errors.Is(err, unix.ENOBUFS) {
		return k, fmt.Errorf("%w: %w", errOverrun, err)
	}
	return k, err
}

func (n *nlNotifier) SetReadDeadline(t time.Time) error { return n.f.SetReadDeadline(t) }
func (n *nlNotifier) Close() error                      { return n.f.Close() }

// dumpTimeout bounds the wait for the kernel's answer to a dump, so that a
// lost answer fails the read instead of wedging the goroutine (and Close).
const dumpTimeout = 5 * time.Second

// dumpTries is how often read tries again when the kernel says a dump was
// interrupted by a change (NLM_F_DUMP_INTR), before it reports an error
// (the change's notification makes the monitor read again in any case).
const dumpTries = 3

// dumper reads the links and addresses with RTM_GETLINK and RTM_GETADDR
// dumps over a socket of its own. Only one goroutine uses it at a time:
// New, then the monitor's goroutine.
type dumper struct {
	fd  int
	seq uint32
	buf []byte
}

func newDumper() (*dumper, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	tv := unix.NsecToTimeval(dumpTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink SO_RCVTIMEO: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	// 32 KiB is the most the kernel puts in one datagram of a dump.
	return &dumper{fd: fd, buf: make([]byte, 64<<10)}, nil
}

func (d *dumper) close() error { return unix.Close(d.fd) }

// read dumps the links, then the addresses, and returns every address
// with its link's state.
func (d *dumper) read() ([]ifAddr, error) {
	var err error
	for range dumpTries {
		var links, addrs []nlMsg
		var intrL, intrA bool
		if links, intrL, err = d.dump(unix.RTM_GETLINK, make([]byte, unix.SizeofIfInfomsg)); err != nil {
			return nil, err
		}
		if addrs, intrA, err = d.dump(unix.RTM_GETADDR, make([]byte, unix.SizeofIfAddrmsg)); err != nil {
			return nil, err
		}
		if !intrL && !intrA {
			return parseAddrs(addrs, parseLinks(links)), nil
		}
		err = errors.New("netlink dump interrupted by changes")
	}
	return nil, err
}

// dump sends a dump request of type typ with body (an ifinfomsg or
// ifaddrmsg of family AF_UNSPEC, all zero: every family, every link) and
// collects the answer up to NLMSG_DONE. It skips messages of another
// sequence number (the rest of an answer an earlier, failed dump left
// behind) and reports whether the kernel marked the dump as interrupted.
func (d *dumper) dump(typ uint16, body []byte) (msgs []nlMsg, interrupted bool, err error) {
	d.seq++
	req := make([]byte, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], typ)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], d.seq)
	copy(req[unix.NLMSG_HDRLEN:], body)
	if err := unix.Sendto(d.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, false, fmt.Errorf("netlink dump request: %w", err)
	}
	for {
		n, _, flags, from, err := unix.Recvmsg(d.fd, d.buf, nil, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("netlink dump: %w", err)
		}
		if flags&unix.MSG_TRUNC != 0 {
			return nil, false, errors.New("netlink dump: message truncated")
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // not from the kernel
		}
		// A copy: the messages outlive the buffer, which the next
		// datagram of the dump overwrites.
		batch, err := parseMessages(slices.Clone(d.buf[:n]))
		if err != nil {
			return nil, false, fmt.Errorf("netlink dump: %w", err)
		}
		for _, m := range batch {
			if m.seq != d.seq {
				continue
			}
			if m.flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch m.typ {
			case unix.NLMSG_DONE, unix.NLMSG_ERROR:
				// Both carry an int: 0, or a negative errno.
				if len(m.data) >= 4 {
					if code := int32(binary.NativeEndian.Uint32(m.data)); code < 0 {
						return nil, false, fmt.Errorf("netlink dump: %w", unix.Errno(-code))
					}
				}
				if m.typ == unix.NLMSG_DONE {
					return msgs, interrupted, nil
				}
			default:
				msgs = append(msgs, m)
			}
		}
	}
}

// nlMsg is one netlink message: the fields of its header that dump uses,
// and its payload.
type nlMsg struct {
	typ, flags uint16
	seq        uint32
	data       []byte
}

// parseMessages splits a datagram into its netlink messages.
func parseMessages(b []byte) ([]nlMsg, error) {
	var msgs []nlMsg
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return nil, fmt.Errorf("bad netlink message length %d of %d", l, len(b))
		}
		msgs = append(msgs, nlMsg{
			typ:   binary.NativeEndian.Uint16(b[4:]),
			flags: binary.NativeEndian.Uint16(b[6:]),
			seq:   binary.NativeEndian.Uint32(b[8:]),
			data:  b[unix.NLMSG_HDRLEN:l],
		})
		b = b[min(align4(l), len(b)):]
	}
	return msgs, nil
}

// attrs calls fn for each route attribute (struct rtattr) in b, stopping
// at the first malformed one.
func attrs(b []byte, fn func(typ uint16, value []byte)) {
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		if l < unix.SizeofRtAttr || l > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:]), b[unix.SizeofRtAttr:l])
		b = b[min(align4(l), len(b)):]
	}
}

func align4(n int) int { return (n + 3) &^ 3 }

// link is what the filter needs of an interface.
type link struct{ up, loopback bool }

// parseLinks reads the RTM_NEWLINK messages of a link dump: each link's
// index and its IFF_UP, IFF_RUNNING and IFF_LOOPBACK flags (struct
// ifinfomsg: family, pad, type, index at 4, flags at 8).
func parseLinks(msgs []nlMsg) map[uint32]link {
	links := make(map[uint32]link, len(msgs))
	for _, m := range msgs {
		if m.typ != unix.RTM_NEWLINK || len(m.data) < unix.SizeofIfInfomsg {
			continue
		}
		index := binary.NativeEndian.Uint32(m.data[4:])
		flags := binary.NativeEndian.Uint32(m.data[8:])
		links[index] = link{
			up:       flags&unix.IFF_UP != 0 && flags&unix.IFF_RUNNING != 0,
			loopback: flags&unix.IFF_LOOPBACK != 0,
		}
	}
	return links
}

// parseAddrs reads the RTM_NEWADDR messages of an address dump (struct
// ifaddrmsg: family, prefix length, flags, scope, index at 4; then
// attributes). The address is IFA_LOCAL when present: on a point-to-point
// link IFA_ADDRESS is the peer's. IFA_FLAGS, when present, holds all the
// flags; ifaddrmsg only the low eight. An address whose link the link
// dump did not list (it came after) counts as down: its link's
// notification makes the monitor read again.
func parseAddrs(msgs []nlMsg, links map[uint32]link) []ifAddr {
	list := make([]ifAddr, 0, len(msgs))
	for _, m := range msgs {
		if m.typ != unix.RTM_NEWADDR || len(m.data) < unix.SizeofIfAddrmsg {
			continue
		}
		a := ifAddr{
			Flags: uint32(m.data[2]),
			Scope: m.data[3],
		}
		l := links[binary.NativeEndian.Uint32(m.data[4:])]
		a.Up, a.Loopback = l.up, l.loopback
		var address, local netip.Addr
		attrs(m.data[unix.SizeofIfAddrmsg:], func(typ uint16, v []byte) {
			switch typ {
			case unix.IFA_ADDRESS:
				address, _ = netip.AddrFromSlice(v)
			case unix.IFA_LOCAL:
				local, _ = netip.AddrFromSlice(v)
			case unix.IFA_FLAGS:
				if len(v) >= 4 {
					a.Flags = binary.NativeEndian.Uint32(v)
				}
			}
		})
		a.Addr = address
		if local.IsValid() {
			a.Addr = local
		}
		if a.Addr.IsValid() {
			list = append(list, a)
		}
	}
	return list
}
