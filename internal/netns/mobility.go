package netns

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// Renumbering and moving a site's host, for mobility tests (RFC 8046): the
// host keeps its namespace, its interface eth0 and its sockets, and gets a
// new address in a new subnet, as after a new DHCP lease. Sockets bound to
// 0.0.0.0 keep working and send from the new address; sockets bound to the
// old address stop working.
//
// Every router hands out the subnets of its 10.(100+i).0.0/16, one /24 per
// host link it serves (router .1, host .2): 10.(100+i).0.0/24 to its own
// host at first, then 10.(100+i).1.0/24, .2.0/24, ... in turn, for each
// Renumber or Move, wrapping after 255 and skipping subnets in use.

// Renumber gives Host(h) a new subnet of the router it is attached to, and
// returns the host's new address: the router adds the new subnet's .1 to
// the link, the host drops its address and takes the new subnet's .2 with
// a default route via .1, then the router drops the old .1. For a site
// without NAT the public side's routes follow (the old subnet is no longer
// routed). For a NAT site the public address stays the router's, but the
// NAT sees a new private source: its old mappings stay until they time
// out, so the host's flows get new mappings, on new public ports (Linux
// MASQUERADE only keeps the private port when no live mapping holds it, and
// the old mapping to the same destination does).
func (tp *Topology) Renumber(h int) (netip.Addr, error) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if h < 0 || h >= len(tp.sites) {
		return netip.Addr{}, fmt.Errorf("netns: Renumber(%d): no such host", h)
	}
	s := &tp.sites[h]
	at := tp.sites[s.at].router
	old := s.lan
	k, err := tp.freeSubnet(s.at)
	if err != nil {
		return netip.Addr{}, err
	}
	gw, addr := linkAddr(s.at, k, 1), linkAddr(s.at, k, 2)
	oldGW := hostAddr(old, 1)

	if err := run(fmt.Sprintf("addr add %s dev %s\n", gw, s.ifname), "ip", "-n", at.name, "-batch", "-"); err != nil {
		return netip.Addr{}, err
	}
	at.setInterface(s.ifname, gw)
	if err := tp.readdress(s, addr, oldGW.Addr(), gw.Addr()); err != nil {
		return netip.Addr{}, err
	}
	if err := run(fmt.Sprintf("addr del %s dev %s\n", oldGW, s.ifname), "ip", "-n", at.name, "-batch", "-"); err != nil {
		return netip.Addr{}, err
	}
	s.lan = addr.Masked()
	return addr.Addr(), tp.moveLANRoutes(s.at, old, s.at, s.lan)
}

// Move unplugs Host(h)'s link from the router it is attached to and plugs
// it into the router of site to, as a laptop leaves one Wi-Fi network for
// another, and returns the host's new address. The host keeps eth0 (the
// same veth, whose router end moves to the other router's namespace, so
// the host sees the carrier go and come back): it loses its address and
// default route, then takes .2 of a new /24 of the new router's
// 10.(100+to).0.0/16, with a default route via its .1. The router end is
// lan0 at the host's own router and lan-h<h> at another; the new router
// translates (or routes, without NAT) the host's traffic as its own
// host's: its NAT gives the host's flows new mappings, on its own public
// address. Move(h, h) brings the host home, to a new subnet of its own
// router's.
func (tp *Topology) Move(h, to int) (netip.Addr, error) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if h < 0 || h >= len(tp.sites) || to < 0 || to >= len(tp.sites) {
		return netip.Addr{}, fmt.Errorf("netns: Move(%d, %d): no such host or site", h, to)
	}
	s := &tp.sites[h]
	if s.at == to {
		return netip.Addr{}, fmt.Errorf("netns: Move(%d, %d): the host is attached to that site already (Renumber gives it a new subnet there)", h, to)
	}
	from, dst := tp.sites[s.at].router, tp.sites[to].router
	old, oldAt := s.lan, s.at
	k, err := tp.freeSubnet(to)
	if err != nil {
		return netip.Addr{}, err
	}
	gw, addr := linkAddr(to, k, 1), linkAddr(to, k, 2)
	ifname := "lan0"
	if to != h {
		ifname = "lan-h" + strconv.Itoa(h)
	}

	// Moving a device to another namespace takes it down and drops its
	// addresses; the name is set in the same request, so it never
	// clashes with another of the router's links.
	if err := run(fmt.Sprintf("link set %s netns %s name %s\n", s.ifname, dst.name, ifname), "ip", "-n", from.name, "-batch", "-"); err != nil {
		return netip.Addr{}, err
	}
	from.setInterface(s.ifname, netip.Prefix{})
	s.at, s.ifname = to, ifname
	if err := run(fmt.Sprintf("addr add %s dev %s\nlink set %s up\n", gw, ifname, ifname), "ip", "-n", dst.name, "-batch", "-"); err != nil {
		return netip.Addr{}, err
	}
	dst.setInterface(ifname, gw)
	if err := tp.readdress(s, addr, hostAddr(old, 1).Addr(), gw.Addr()); err != nil {
		return netip.Addr{}, err
	}
	s.lan = addr.Masked()
	return addr.Addr(), tp.moveLANRoutes(oldAt, old, to, s.lan)
}

// readdress replaces the host's address and default route.
func (tp *Topology) readdress(s *site, addr netip.Prefix, oldGW, gw netip.Addr) error {
	// Deleting a device's last address deletes its routes too; replace
	// (not add) in case it has none.
	cmd := fmt.Sprintf("addr flush dev eth0\naddr add %s dev eth0\nroute replace %s\n", addr, defaultRoute(gw))
	if err := run(cmd, "ip", "-n", s.host.name, "-batch", "-"); err != nil {
		return err
	}
	s.host.setAddr(addr)
	s.host.dropRoute(defaultRoute(oldGW))
	s.host.addRoute("eth0", defaultRoute(gw))
	return nil
}

// freeSubnet returns the next k whose 10.(100+i).k.0/24 no link of site i's
// router uses, and advances the router's turn.
func (tp *Topology) freeSubnet(i int) (int, error) {
	r := &tp.sites[i]
	for range 256 {
		k := r.next
		r.next = (r.next + 1) % 256
		used := false
		for _, s := range tp.sites {
			if s.at == i && int(s.lan.Addr().As4()[2]) == k {
				used = true
			}
		}
		if !used {
			return k, nil
		}
	}
	return 0, fmt.Errorf("netns: router %d has no free subnet", i)
}

// moveLANRoutes replaces, on the public side, the routes into oldLAN (of
// site from's router) with routes into newLAN (of site to's), for those of
// the two sites that have no NAT.
func (tp *Topology) moveLANRoutes(from int, oldLAN netip.Prefix, to int, newLAN netip.Prefix) error {
	var errs []error
	if tp.sites[from].spec.NAT == None {
		for _, r := range tp.lanRouters(from) {
			// flush exact: no error if a link going down deleted it.
			if err := run(fmt.Sprintf("route flush exact %s\n", oldLAN), "ip", "-n", r.ns.name, "-batch", "-"); err != nil {
				errs = append(errs, err)
			}
			r.ns.dropRoute(viaRoute(oldLAN, tp.sites[from].router.Addr(), r.dev))
		}
	}
	if tp.sites[to].spec.NAT == None {
		for _, r := range tp.lanRouters(to) {
			spec := viaRoute(newLAN, tp.sites[to].router.Addr(), r.dev)
			if err := run("route replace "+spec+"\n", "ip", "-n", r.ns.name, "-batch", "-"); err != nil {
				errs = append(errs, err)
				continue
			}
			r.ns.addRoute(r.dev, spec)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netns: moving the routes from %s to %s: %w", oldLAN, newLAN, err)
	}
	return nil
}
