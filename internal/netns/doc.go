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
// route. Interface names are fixed inside each namespace (eth0, lan0, br0,
// p<role>), so parallel runs cannot collide on them.
//
// # Address plan
//
//   - Public segment 198.18.0.0/24 (RFC 2544 benchmarking range, not
//     globally routed): Public 198.18.0.1, Peer 198.18.0.2, Router(i)
//     198.18.0.(10+i). Only the connected /24 is routed there: the public
//     hosts and routers have no default route and no route into a private
//     LAN of a NAT site.
//   - Site i's LAN 10.(100+i).0.0/24: Router(i) 10.(100+i).0.1 on lan0,
//     Host(i) 10.(100+i).0.2 with its default route via its router.
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
// which also runs when the test fails or panics. Namespace names carry the
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
