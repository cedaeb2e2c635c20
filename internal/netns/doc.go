// Package netns builds small networks of Linux network namespaces with real
// NATs for hipnet's end-to-end tests: veth pairs, a bridge, and routers that
// translate with iptables MASQUERADE. It is test support only; nothing outside
// tests imports it.
//
// # Layout
//
// NewTopology builds, for a Spec with two sites and a peer:
//
//	                 namespace sw: bridge br0, no address
//	             the public segment 198.18.0.0/24 (switch)
//	     +---------------+---------------+---------------+
//	     | ppub          | ppeer         | pr0           | pr1
//	     |               |               |               |
//	     | eth0          | eth0          | eth0          | eth0
//	+----+-------+  +----+-------+  +----+-------+  +----+-------+
//	| pub        |  | peer       |  | r0  (NAT)  |  | r1  (NAT)  |
//	| Public()   |  | Peer()     |  | Router(0)  |  | Router(1)  |
//	| 198.18.0.1 |  | 198.18.0.2 |  | 198.18.0.10|  | 198.18.0.11|
//	+------------+  +------------+  |            |  |            |
//	                 (Spec.Peer)    | lan0       |  | lan0       |
//	                                | 10.100.0.1 |  | 10.101.0.1 |
//	                                +----+-------+  +----+-------+
//	                                     | eth0          | eth0
//	                                +----+-------+  +----+-------+
//	                                | h0         |  | h1         |
//	                                | Host(0)    |  | Host(1)    |
//	                                | 10.100.0.2 |  | 10.101.0.2 |
//	                                +------------+  +------------+
//
// Every box is a network namespace; every line is a veth pair whose two ends
// are created directly inside the two namespaces it joins, so the test
// machine's own (root) namespace never gets an interface, an address or a
// route. Interface names are fixed inside each namespace (eth0, eth1, lan0,
// lan-h<h>, br0, br1, p<role>, p<role>-1), so parallel runs cannot collide
// on them.
//
// Spec.MultihomedPeer adds a second public segment for RFC 8047
// multihoming, and makes the switch namespace the "core" router between
// the two:
//
//	  segment 1: 198.18.0.0/24, br0               segment 2: 198.19.0.0/24, br1
//	==+=========+============+============+==    ==+===================+==
//	  |         |            | ppeer      |        |           ppeer-1 |
//	 pub     routers        eth0          +- core -+                  eth1
//	                     198.18.0.2    .254  (sw)  .254          198.19.0.2
//	                         \______________ peer (Peer()) _____________/
//
// so the peer is reachable at both addresses over two paths that share no
// link: Blackhole or SetInterfaceUp can break one while a flow runs. The
// core is the switch namespace itself, forwarding between its two bridges.
//
// # Address plan
//
//   - Public segment 198.18.0.0/24 (RFC 2544 benchmarking range
//     198.18.0.0/15, not globally routed): Public 198.18.0.1, Peer
//     198.18.0.2, Router(i) 198.18.0.(10+i). Only the connected /24 is
//     routed there: the public hosts and routers have no default route and
//     no route into a private LAN of a NAT site.
//   - Second public segment 198.19.0.0/24 (the same range), only with
//     Spec.MultihomedPeer: the peer's eth1 198.19.0.2, the core (switch
//     namespace) 198.19.0.254 there and 198.18.0.254 on the first segment.
//     The public host and the routers route 198.19.0.0/24 via 198.18.0.254;
//     the core routes into the LANs of sites without NAT. The peer sends
//     what comes from 198.19.0.2 through eth1 (a policy routing rule, as a
//     host with two providers has), and has a default route via
//     198.19.0.254 (metric 200), which carries everything while eth0 is
//     down; a socket bound to 0.0.0.0 sends from 198.18.0.2 through eth0
//     while eth0 is up, so to answer on the second address a socket must be
//     bound to it (or set the source with IP_PKTINFO).
//   - Site i's router owns 10.(100+i).0.0/16 and gives every host link it
//     serves a /24 of it, router .1, host .2 (with a default route via .1).
//     At first Host(i)'s link is 10.(100+i).0.0/24 on lan0: Router(i)
//     10.(100+i).0.1, Host(i) 10.(100+i).0.2. Renumber and Move hand out
//     10.(100+i).1.0/24, .2.0/24, ... in turn (wrapping after 255,
//     skipping subnets in use). LAN(h) is the subnet of Host(h)'s link now.
//     At most MaxSites sites.
//   - IPv4 only: IPv6 is disabled in every namespace (no link-local
//     addresses, no router or neighbour solicitations).
//
// # NATs
//
// A router forwards (per-namespace net.ipv4.ip_forward=1) and, for a NAT
// site, translates with one rule on its public interface:
//
//	iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE               # EndpointIndependent
//	iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE --random-fully # RandomFully
//
// and drops forwarded packets from the public side that belong to no
// connection the LAN opened (FORWARD policy DROP, ESTABLISHED,RELATED
// accepted), so even a public host that adds a route to the LAN cannot reach
// the private host. What the two kinds do, in RFC 4787 terms:
//
//   - EndpointIndependent: plain MASQUERADE keeps the private source port
//     when it is free, so one private socket gets the same public port
//     towards every destination (endpoint-independent mapping). Linux
//     picks another port when the kept one would clash with an existing
//     conntrack entry; the routers drop unsolicited UDP addressed to
//     themselves on the public side (as a home router's firewall does), so
//     a peer's hole-punching packet that arrives first leaves no such
//     entry.
//   - RandomFully: every new destination address and port gets a new random
//     public port (address-and-port-dependent mapping, a "symmetric" NAT).
//
// Both filter by address and port: only the exact remote address and port a
// private socket sent to can send back through its mapping. A mapping lives
// as long as its conntrack entry: by default 30 s without replies and 120 s
// once both directions have been seen; SiteSpec.MappingTimeout shortens both.
// A site with NAT None is a plain router: the public hosts and the other
// routers get a route to its LAN, and its host is reached at its private
// address.
//
// A conntrack flush (Namespace.FlushConntrack) makes a NAT forget its
// mappings, but an EndpointIndependent site then usually gives the flow
// the same public port again, since MASQUERADE keeps the private port when
// it is free. Topology.Rebind guarantees a new one (see there).
//
// # Changing the network while it runs
//
// For mobility, multihoming and failover tests (RFC 8046, RFC 8047), with
// flows running; each operation returns once the change is made:
//
//   - Namespace.SetInterfaceUp (and SetLinkUp, for the primary interface):
//     a link goes down, with its addresses and routes, and comes back
//     with them (the routes this package installed are restored).
//   - Topology.Blackhole: the path to and from a public address fails,
//     silently, while the interface stays up with its address.
//   - Topology.Renumber: a site's host gets a new address in a new subnet
//     of the same router.
//   - Topology.Move: a site's host leaves its router for another site's,
//     with another NAT (or none), another subnet and another public
//     address, as a laptop moves from one Wi-Fi network to another.
//   - Topology.Rebind: a NAT gives every UDP flow a new public port.
//
// Hosts keep their namespace, eth0 and sockets throughout: a socket bound to
// 0.0.0.0 goes on working from the new address.
//
// # Running code inside a namespace
//
// Namespace.Do runs a function on an OS thread switched into the namespace.
// A socket created there (net.ListenPacket, net.Dial) belongs to that
// namespace for its whole life and can be used from any goroutine after Do
// returns, so one test process can run several "hosts" in different
// namespaces: open each host's socket with Namespace.ListenPacket and hand it
// to the code under test (hipnet.Config.PacketConn). Goroutines started
// inside fn do not inherit the namespace.
//
// # Safety
//
// Tests built on this package send traffic only to addresses inside the
// namespaces that the test itself created (and to loopback). None of those
// namespaces has a link to the machine's own namespace, so a packet to any
// other address cannot leave them; do not add one.
//
// # Cleaning up
//
// NewTopology registers a t.Cleanup that deletes every namespace it created,
// which also runs when the test fails or panics. Everything the operations
// above create (addresses, routes, rules, moved links) lives inside those
// namespaces and goes with them. Namespace names carry the
// creating process's ID ("hn<pid>-<seq>-<role>", base 36); before building
// its first topology a process deletes namespaces of this form whose process
// no longer exists, which a crashed or killed earlier run left behind.
//
// # Requirements and skipping
//
// Root, the ip command (iproute2) and iptables (nft or legacy backend), and a
// kernel with network namespaces, veth, bridge, conntrack, NAT and
// MASQUERADE --random-fully, built in or loadable. Available says whether
// all of that works; Require (which NewTopology calls) skips the test when
// it does not, or fails it when the environment variable HIPNET_E2E is "1",
// as `make e2e` sets it, so the end-to-end run can never pass by skipping.
//
// End-to-end tests are named TestE2E...; `make e2e` selects them with
// -run '^TestE2E'.
package netns
