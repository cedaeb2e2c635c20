package relay

import (
	"net"
	"net/netip"
	"slices"
)

// The relay's own addresses: where it must never send what a registered
// host asks for. RFC 5770 §4.5 has a relay send a registered host's packet
// to whatever its RELAY_TO names; the RELAY_HMAC proves only that the host
// asked, not that the address is a fair target. Two kinds are not:
//
//   - the relay's own socket: the packet would come back in "from" the
//     relay, be relayed again with RELAY_FROM naming the relay, and a
//     nested RELAY_TO could have it bounce through the relay's own
//     control path. Never, for anyone.
//   - the relay's machine: a loopback address, or any port on one of its
//     own addresses. Linux delivers a packet a host sends to its own
//     address over the loopback interface, from that address, and
//     firewalls commonly let all of that in: services that listen on the
//     relay's machine, shielded from the network, would be reachable
//     through any registered host's RELAY_TO. Such a RELAY_TO is taken
//     only from a host on the relay's machine itself, or when it names a
//     local source whose packets the relay relayed to a registered host
//     a moment ago (forwarder.localSeen): an Initiator on the relay's
//     machine, whose RELAY_FROM the registered host answers.
//
// The same holds for ESP (forward.go set): no forwarding entry sends to
// the relay's own socket, so ESP never loops through the relay.
//
// What is covered: the socket's address, or, when it is bound to the
// unspecified address (the default ":10500"), that port on any loopback
// and interface address; the interface addresses as they were at start or
// at the last prune (once a minute, at the stack's R1 rotation). Not
// covered: the relay's public address when a NAT in front of it holds it
// (no interface has it; the packet comes back from that address, and at
// worst is relayed once more, or reaches a service the NAT forwards,
// which the network reaches anyway).

// selfView is what the relay knows of its own addresses. It is replaced
// whole (forwarder.self), never changed, so any goroutine may read it.
type selfView struct {
	listen netip.AddrPort // the stack's socket address
	host   []netip.Addr   // the machine's interface addresses
}

// newSelfView returns the view of a relay whose socket is at listen, with
// the machine's interface addresses.
func newSelfView(listen netip.AddrPort) *selfView {
	listen = norm(listen)
	return &selfView{listen: listen, host: interfaceAddrs()}
}

// is reports whether a is the relay's own socket: its address, or, when
// the socket is bound to the unspecified address, its port on a loopback
// or interface address. (An IPv4 unspecified socket does not receive on
// IPv6 addresses; counting them as ours refuses nothing a relay should
// send.)
func (v *selfView) is(a netip.AddrPort) bool {
	ip, l := a.Addr().Unmap().WithZone(""), v.listen.Addr()
	switch {
	case a.Port() != v.listen.Port():
		return false
	case ip == l:
		return true
	case !l.IsUnspecified():
		return false
	}
	return ip.IsLoopback() || slices.Contains(v.host, ip)
}

// local reports whether ip is the relay's machine: loopback, the socket's
// address, or an interface address.
func (v *selfView) local(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	return ip.IsLoopback() || ip == v.listen.Addr() || slices.Contains(v.host, ip)
}

// sendable reports whether the relay may send a registered host's packet,
// which came from from, to the address to its RELAY_TO names: an address
// it forwards to at all (forwardable), not its own socket, and not its
// machine (local) unless the packet came from its machine too, or seen
// says to is a local source the relay relayed for a moment ago. A relay
// that does not know its address yet (v nil) sends nothing.
func sendable(to, from netip.AddrPort, v *selfView, seen bool) bool {
	if !forwardable(to) || v == nil || v.is(to) {
		return false
	}
	return !v.local(to.Addr()) || v.local(from.Addr()) || seen
}

// interfaceAddrs returns the addresses of the machine's interfaces, or
// none if they cannot be read (loopback is then still covered by is).
func interfaceAddrs() []netip.Addr {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, ifa := range ifas {
		if p, err := netip.ParsePrefix(ifa.String()); err == nil {
			out = append(out, p.Addr().Unmap().WithZone(""))
		}
	}
	return out
}
