package netns

import (
	"fmt"
	"net/netip"
	"strings"
)

// Blackhole cuts (on) or restores (off) the path to and from addr, an
// address on a public segment: the public host's, the peer's (either, with
// Spec.MultihomedPeer), a router's public address (the site's uplink).
// Cut, nothing reaches the interface that holds addr and nothing it sends
// arrives anywhere, silently both ways, while the interface stays up with
// its carrier, its address and its routes: a path failure somewhere in the
// network that the host cannot see, not a link going down (SetInterfaceUp),
// which also takes the address away. A socket keeps sending without an
// error; datagrams just vanish.
//
// The switch takes the interface's bridge port out of the bridge (and stops
// the port answering ARP), and puts it back. It does not use an iptables
// DROP rule inside the host: dropped on output, a datagram fails the
// sender's sendto with EPERM, which a real path failure never does.
//
// Blackhole acts on the whole interface; every public interface holds one
// address. Turning it on or off twice is harmless.
func (tp *Topology) Blackhole(addr netip.Addr, on bool) error {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for _, n := range tp.publicSide() {
		for _, ifc := range n.Interfaces() {
			if ifc.Prefix.Addr() != addr || !strings.HasPrefix(ifc.Name, "eth") {
				continue
			}
			port, bridge := tp.port(n, ifc.Name), "br0"
			if ifc.Name == "eth1" {
				bridge = "br1"
			}
			cmd := fmt.Sprintf("link set %s arp on master %s\n", port, bridge)
			if on {
				cmd = fmt.Sprintf("link set %s nomaster arp off\n", port)
			}
			return run(cmd, "ip", "-n", tp.sw.name, "-batch", "-")
		}
	}
	return fmt.Errorf("netns: Blackhole(%s): no public interface has that address", addr)
}
