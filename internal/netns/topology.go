package netns

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// NATType is what a site's router does to the traffic of its LAN.
type NATType int

const (
	// None: a plain router. The public hosts and the other routers have a
	// route to the site's LAN, and its host is reached at its private
	// address.
	None NATType = iota
	// EndpointIndependent: iptables MASQUERADE, which keeps one public port
	// for a private socket whatever the destination (RFC 4787
	// endpoint-independent mapping; filtering is address and port
	// dependent).
	EndpointIndependent
	// RandomFully: iptables MASQUERADE --random-fully, a new random public
	// port for every destination address and port (address-and-port
	// dependent mapping: a symmetric NAT).
	RandomFully
)

func (n NATType) String() string {
	switch n {
	case None:
		return "None"
	case EndpointIndependent:
		return "EndpointIndependent"
	case RandomFully:
		return "RandomFully"
	}
	return "NATType(" + strconv.Itoa(int(n)) + ")"
}

// MaxSites is the largest number of sites a Spec may have: site i's LAN is
// 10.(100+i).0.0/24.
const MaxSites = 100

// Spec describes a topology.
type Spec struct {
	// Sites are the private sites, each a router with one host behind it.
	Sites []SiteSpec
	// Peer adds a second host on the public segment, 198.18.0.2.
	Peer bool
	// MultihomedPeer adds the peer (as Peer does) and gives it a second
	// link, eth1 198.19.0.2, on a second public segment 198.19.0.0/24,
	// for RFC 8047 multihoming: the switch namespace then also routes
	// between the two segments (the "core", 198.18.0.254 and
	// 198.19.0.254), so that every host reaches the peer at both
	// addresses, over two paths that share no link. See the package
	// documentation.
	MultihomedPeer bool
}

// SiteSpec describes one private site.
type SiteSpec struct {
	// NAT is what the site's router does; the zero value is None, a plain
	// router without translation.
	NAT NATType
	// MappingTimeout, if not zero, is how long the router keeps an idle NAT
	// mapping: both of its conntrack UDP timeouts, before and after replies
	// (the sysctls net.netfilter.nf_conntrack_udp_timeout and
	// nf_conntrack_udp_timeout_stream, 30 s and 120 s by default). Whole
	// seconds, at least one.
	MappingTimeout time.Duration
}

// Topology is a network of namespaces built by NewTopology; see the package
// documentation for its layout and address plan. Its methods may be called
// from several goroutines; the ones that change the network (Renumber,
// Move, Rebind, Blackhole) run one at a time.
type Topology struct {
	prefix     string
	sw         *Namespace
	public     *Namespace
	peer       *Namespace
	multihomed bool // Spec.MultihomedPeer: the peer's eth1, the core in sw
	sites      []site
	all        []*Namespace // in creation order

	mu sync.Mutex // serializes the changes; guards the sites' link fields
}

type site struct {
	spec   SiteSpec
	router *Namespace
	host   *Namespace

	// The host's link: plugged into the router of site at (the host's own
	// at first, another after Move), as interface ifname there, with the
	// subnet lan = 10.(100+at).k.0/24 (router .1, host .2).
	at     int
	lan    netip.Prefix
	ifname string

	// The router's: the next k to try when a link of this router needs a
	// new subnet, and the NAT rules that Rebind added, by what they match.
	next   int
	rebind map[string]string
}

// Public is the public host, 198.18.0.1: the relay or rendezvous server.
func (tp *Topology) Public() *Namespace { return tp.public }

// Peer is the second public host, 198.18.0.2, or nil if neither Spec.Peer
// nor Spec.MultihomedPeer was set. With MultihomedPeer its Interfaces are
// eth0 198.18.0.2/24 and eth1 198.19.0.2/24.
func (tp *Topology) Peer() *Namespace { return tp.peer }

// Sites returns the number of private sites.
func (tp *Topology) Sites() int { return len(tp.sites) }

// Router returns site i's router; its Addr is its public address.
func (tp *Topology) Router(i int) *Namespace { return tp.sites[i].router }

// Host returns the host of site i.
func (tp *Topology) Host(i int) *Namespace { return tp.sites[i].host }

// NAT returns the NAT type of site i.
func (tp *Topology) NAT(i int) NATType { return tp.sites[i].spec.NAT }

// LAN returns the subnet of the link of site i's host: 10.(100+i).0.0/24
// at first, then whatever Renumber or Move gave it, a /24 of
// 10.(100+j).0.0/16 where j is AttachedTo(i).
func (tp *Topology) LAN(i int) netip.Prefix {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.sites[i].lan
}

// AttachedTo returns the site whose router Host(h) is attached to: h at
// first, another after Move.
func (tp *Topology) AttachedTo(h int) int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.sites[h].at
}

// Namespaces returns every namespace of the topology, the switch included.
func (tp *Topology) Namespaces() []*Namespace {
	return append([]*Namespace(nil), tp.all...)
}

// Prefix is the start of the names of all the topology's namespaces.
func (tp *Topology) Prefix() string { return tp.prefix }

var (
	publicNet = netip.MustParsePrefix("198.18.0.0/24")
	secondNet = netip.MustParsePrefix("198.19.0.0/24") // Spec.MultihomedPeer
)

// coreHost is the host number of the core router (the switch namespace,
// with Spec.MultihomedPeer) on both public segments.
const coreHost = 254

// publicAddr returns 198.18.0.x/24.
func publicAddr(x int) netip.Prefix { return hostAddr(publicNet, x) }

// secondAddr returns 198.19.0.x/24.
func secondAddr(x int) netip.Prefix { return hostAddr(secondNet, x) }

// hostAddr returns address x of the /24 subnet.
func hostAddr(subnet netip.Prefix, x int) netip.Prefix {
	a := subnet.Addr().As4()
	a[3] = byte(x)
	return netip.PrefixFrom(netip.AddrFrom4(a), subnet.Bits())
}

// lanAddr returns 10.(100+i).0.x/24.
func lanAddr(i, x int) netip.Prefix { return linkAddr(i, 0, x) }

// linkAddr returns 10.(100+i).k.x/24: address x of subnet k of site i's
// router.
func linkAddr(i, k, x int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + i), byte(k), byte(x)}), 24)
}

// NewTopology builds the topology that spec describes and registers a
// t.Cleanup that deletes it. It calls Require first, so it skips (or under
// HIPNET_E2E=1 fails) the test where namespaces are not available, and it
// fails the test if building fails.
func NewTopology(t testing.TB, spec Spec) *Topology {
	t.Helper()
	Require(t)
	if len(spec.Sites) > MaxSites {
		t.Fatalf("netns: %d sites, at most %d", len(spec.Sites), MaxSites)
	}
	for i, s := range spec.Sites {
		if s.NAT < None || s.NAT > RandomFully {
			t.Fatalf("netns: site %d: unknown %v", i, s.NAT)
		}
		if s.MappingTimeout != 0 && (s.MappingTimeout < time.Second || s.MappingTimeout%time.Second != 0) {
			t.Fatalf("netns: site %d: MappingTimeout %v is not a whole number of seconds", i, s.MappingTimeout)
		}
	}

	tp := plan(spec)
	t.Cleanup(func() {
		start := time.Now()
		if err := tp.destroy(); err != nil {
			t.Errorf("netns: removing topology %s: %v", tp.prefix, err)
			return
		}
		t.Logf("netns: topology %s removed in %v", tp.prefix, time.Since(start).Round(time.Millisecond))
	})
	start := time.Now()
	if err := tp.build(); err != nil {
		t.Fatalf("netns: building topology %s: %v", tp.prefix, err)
	}
	t.Logf("netns: topology %s (%d namespaces) built in %v", tp.prefix, len(tp.all), time.Since(start).Round(time.Millisecond))
	return tp
}

// plan names the namespaces of a topology and assigns their addresses;
// build creates them.
func plan(spec Spec) *Topology {
	tp := &Topology{prefix: runPrefix(), multihomed: spec.MultihomedPeer}
	mk := func(role string, addr netip.Prefix, link string) *Namespace {
		n := &Namespace{name: tp.prefix + role, addr: addr, link: link}
		tp.all = append(tp.all, n)
		return n
	}
	tp.sw = mk("sw", netip.Prefix{}, "br0")
	tp.public = mk("pub", publicAddr(1), "eth0")
	if spec.Peer || spec.MultihomedPeer {
		tp.peer = mk("peer", publicAddr(2), "eth0")
	}
	if tp.multihomed {
		tp.peer.setInterface("eth1", secondAddr(2))
		tp.sw.setInterface("br0", publicAddr(coreHost))
		tp.sw.setInterface("br1", secondAddr(coreHost))
	}
	for i, s := range spec.Sites {
		tp.sites = append(tp.sites, site{
			spec:   s,
			router: mk("r"+strconv.Itoa(i), publicAddr(10+i), "eth0"),
			host:   mk("h"+strconv.Itoa(i), lanAddr(i, 2), "eth0"),
			at:     i,
			lan:    lanAddr(i, 0).Masked(),
			ifname: "lan0",
			next:   1,
		})
		tp.sites[i].router.setInterface("lan0", lanAddr(i, 1))
	}

	return tp
}

// build creates the namespaces, links, addresses, routes, sysctls and NAT
// rules.
func (tp *Topology) build() error {
	var add strings.Builder
	for _, n := range tp.all {
		fmt.Fprintf(&add, "netns add %s\n", n.name)
	}
	if err := run(add.String(), "ip", "-batch", "-"); err != nil {
		return err
	}

	// Sysctls first, so that the interfaces created next inherit
	// disable_ipv6 from "default".
	for _, n := range tp.all {
		if err := n.writeSysctl("net/ipv6/conf/all/disable_ipv6", "1"); err != nil {
			return err
		}
		if err := n.writeSysctl("net/ipv6/conf/default/disable_ipv6", "1"); err != nil {
			return err
		}
	}
	// The switch only bridges: keep bridged frames out of its (empty)
	// iptables, where br_netfilter would otherwise send them.
	if err := tp.sw.writeSysctl("net/bridge/bridge-nf-call-iptables", "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, s := range tp.sites {
		if err := s.router.writeSysctl("net/ipv4/ip_forward", "1"); err != nil {
			return err
		}
	}
	if tp.multihomed {
		// The core routes between the segments, each on one bridge, so
		// it never has a reason to redirect.
		for _, kv := range [][2]string{
			{"net/ipv4/ip_forward", "1"},
			{"net/ipv4/conf/all/send_redirects", "0"},
			{"net/ipv4/conf/default/send_redirects", "0"},
		} {
			if err := tp.sw.writeSysctl(kv[0], kv[1]); err != nil {
				return err
			}
		}
	}

	// Links and addresses, one `ip -batch` per namespace, in an order
	// where every interface exists before it is configured: the switch's
	// bridge; the public hosts and routers, which create their veths into
	// the switch and (routers) into their host; the hosts; the bridge
	// ports.
	var batches []ipBatch
	batch := func(n *Namespace, format string, args ...any) {
		if len(batches) == 0 || batches[len(batches)-1].ns != n {
			batches = append(batches, ipBatch{ns: n})
		}
		fmt.Fprintf(&batches[len(batches)-1].cmd, format+"\n", args...)
	}
	addRoute := func(n *Namespace, dev, spec string) {
		batch(n, "route add %s", spec)
		n.addRoute(dev, spec)
	}
	batch(tp.sw, "link set lo up")
	batch(tp.sw, "link add br0 type bridge")
	batch(tp.sw, "link set br0 up")
	if tp.multihomed {
		batch(tp.sw, "link add br1 type bridge")
		batch(tp.sw, "link set br1 up")
		// Fixed addresses: a bridge otherwise takes the lowest of its
		// ports' and changes it when Blackhole takes a port out, which
		// would leave the core's neighbours with a stale one.
		for k, ifc := range tp.sw.Interfaces() {
			batch(tp.sw, "link set %s address 02:00:00:00:fe:%02x", ifc.Name, k)
			batch(tp.sw, "addr add %s dev %s", ifc.Prefix, ifc.Name)
		}
	}
	publicSide := tp.publicSide()
	for _, n := range publicSide {
		batch(n, "link set lo up")
		batch(n, "link add eth0 type veth peer name %s netns %s", tp.port(n, "eth0"), tp.sw.name)
		batch(n, "addr add %s dev eth0", n.addr)
		batch(n, "link set eth0 up")
		if n == tp.peer && tp.multihomed {
			batch(n, "link add eth1 type veth peer name %s netns %s", tp.port(n, "eth1"), tp.sw.name)
			batch(n, "addr add %s dev eth1", secondAddr(2))
			batch(n, "link set eth1 up")
		}
		if i := tp.siteOf(n); i >= 0 {
			batch(n, "link add lan0 type veth peer name eth0 netns %s", tp.sites[i].host.name)
			batch(n, "addr add %s dev lan0", lanAddr(i, 1))
			batch(n, "link set lan0 up")
		}
	}
	for i, s := range tp.sites {
		batch(s.host, "link set lo up")
		batch(s.host, "addr add %s dev eth0", s.host.addr)
		batch(s.host, "link set eth0 up")
		addRoute(s.host, "eth0", defaultRoute(lanAddr(i, 1).Addr()))
	}
	for _, n := range publicSide {
		batch(tp.sw, "link set %s master br0", tp.port(n, "eth0"))
		batch(tp.sw, "link set %s up", tp.port(n, "eth0"))
	}
	if tp.multihomed {
		batch(tp.sw, "link set %s master br1", tp.port(tp.peer, "eth1"))
		batch(tp.sw, "link set %s up", tp.port(tp.peer, "eth1"))
	}
	// Routes into the LANs of sites without NAT, from everywhere on the
	// public side but their own router (and from the core).
	for i, s := range tp.sites {
		if s.spec.NAT != None {
			continue
		}
		for _, r := range tp.lanRouters(i) {
			addRoute(r.ns, r.dev, viaRoute(s.lan, s.router.Addr(), r.dev))
		}
	}
	// The second segment: from the first through the core; the peer's
	// second address answers through eth1 (policy routing by source, as
	// a host with two providers has), and eth1 carries everything when
	// eth0 is down.
	if tp.multihomed {
		core1, core2 := publicAddr(coreHost).Addr(), secondAddr(coreHost).Addr()
		for _, n := range publicSide {
			if n != tp.peer {
				addRoute(n, "eth0", viaRoute(secondNet, core1, "eth0"))
			}
		}
		batch(tp.peer, "rule add from %s lookup %d pref 100", secondAddr(2).Addr(), peerTable)
		addRoute(tp.peer, "eth1", fmt.Sprintf("%s dev eth1 src %s table %d", secondNet, secondAddr(2).Addr(), peerTable))
		addRoute(tp.peer, "eth1", fmt.Sprintf("default via %s dev eth1 table %d", core2, peerTable))
		addRoute(tp.peer, "eth1", fmt.Sprintf("default via %s dev eth1 metric %d", core2, fallbackMetric))
	}
	for i := range batches {
		b := &batches[i]
		if err := run(b.cmd.String(), "ip", "-n", b.ns.name, "-batch", "-"); err != nil {
			return err
		}
	}

	for _, s := range tp.sites {
		if s.spec.NAT != None {
			if err := run(routerRules(s.spec.NAT), "ip", "netns", "exec", s.router.name, "iptables-restore"); err != nil {
				return err
			}
		}
		if d := s.spec.MappingTimeout; d != 0 {
			secs := strconv.Itoa(int(d / time.Second))
			for _, key := range []string{"nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"} {
				if err := s.router.writeSysctl("net/netfilter/"+key, secs); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// The peer's routing for Spec.MultihomedPeer: the table (and rule
// preference) for its second address, and the metric of its default route
// through eth1, which only the routes through a working eth0 beat.
const (
	peerTable      = 2
	fallbackMetric = 200
)

// publicSide returns the namespaces on the public segment 198.18.0.0/24,
// the switch's core address aside: the public host, the peer, the routers.
func (tp *Topology) publicSide() []*Namespace {
	ns := []*Namespace{tp.public}
	if tp.peer != nil {
		ns = append(ns, tp.peer)
	}
	for _, s := range tp.sites {
		ns = append(ns, s.router)
	}
	return ns
}

// port returns the name, in the switch namespace, of the bridge port that
// n's interface dev (eth0 or eth1) is plugged into: p<role> on br0,
// p<role>-1 on br1.
func (tp *Topology) port(n *Namespace, dev string) string {
	p := "p" + strings.TrimPrefix(n.name, tp.prefix)
	if dev != "eth0" {
		p += "-" + strings.TrimPrefix(dev, "eth")
	}
	return p
}

// nsDev is one interface of a namespace.
type nsDev struct {
	ns  *Namespace
	dev string
}

// lanRouters returns where a route into a LAN of site i's router goes
// when that site has no NAT: every namespace on the public side but that
// router, by eth0, and the core, by br0.
func (tp *Topology) lanRouters(i int) []nsDev {
	var rs []nsDev
	for _, n := range tp.publicSide() {
		if n != tp.sites[i].router {
			rs = append(rs, nsDev{n, "eth0"})
		}
	}
	if tp.multihomed {
		rs = append(rs, nsDev{tp.sw, "br0"})
	}
	return rs
}

// viaRoute is the spec of a route to dst via a gateway on dev.
func viaRoute(dst netip.Prefix, via netip.Addr, dev string) string {
	return fmt.Sprintf("%s via %s dev %s", dst, via, dev)
}

// defaultRoute is the spec of a host's default route.
func defaultRoute(via netip.Addr) string {
	return fmt.Sprintf("default via %s dev eth0", via)
}

// siteOf returns the index of the site whose router is n, or -1.
func (tp *Topology) siteOf(n *Namespace) int {
	for i, s := range tp.sites {
		if s.router == n {
			return i
		}
	}
	return -1
}

// ipBatch is the input of one `ip -n NS -batch -`.
type ipBatch struct {
	ns  *Namespace
	cmd strings.Builder
}

// routerRules is the iptables-restore input of a NAT router: masquerade
// what leaves by the public interface eth0, forward from it to the LAN
// (lan0, and lan-h<h> for a host that Move brought) only what belongs to a
// connection the LAN opened, and drop
// unsolicited UDP addressed to the router itself, as a home router's
// stateful firewall does. The last rule matters for hole punching: a
// packet delivered locally is confirmed in conntrack, and its entry then
// clashes with the mapping the LAN host opens towards that same sender a
// moment later, so MASQUERADE moves that mapping to another port and the
// peer's NAT refuses it. Dropped before confirmation, it leaves nothing.
func routerRules(nat NATType) string {
	return natRules(nat, nil) +
		"*filter\n" +
		":INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -i eth0 -p udp -m conntrack --ctstate NEW -j DROP\n" +
		"-A FORWARD -i lan+ -o eth0 -j ACCEPT\n" +
		"-A FORWARD -i eth0 -o lan+ -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n" +
		"COMMIT\n"
}

// natRules is the nat table of routerRules, with Rebind's rules (whole
// iptables rule lines) before the one that masquerades the rest.
func natRules(nat NATType, first []string) string {
	masq := "-A POSTROUTING -o eth0 -j MASQUERADE"
	if nat == RandomFully {
		masq += " --random-fully"
	}
	var b strings.Builder
	b.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n")
	for _, r := range first {
		b.WriteString(r + "\n")
	}
	b.WriteString(masq + "\nCOMMIT\n")
	return b.String()
}

// destroy deletes every namespace of the topology that exists, which also
// removes their interfaces, addresses, routes and rules; then checks that
// none is left.
func (tp *Topology) destroy() error {
	var errs []error
	for i := len(tp.all) - 1; i >= 0; i-- {
		if err := deleteNamespace(tp.all[i].name); err != nil {
			errs = append(errs, err)
		}
	}
	names, err := listNames()
	if err != nil {
		errs = append(errs, err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, tp.prefix) {
			errs = append(errs, fmt.Errorf("namespace %s is still there", name))
		}
	}
	return errors.Join(errs...)
}
