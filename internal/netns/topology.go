package netns

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
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
// documentation for its layout and address plan.
type Topology struct {
	prefix string
	sw     *Namespace
	public *Namespace
	peer   *Namespace
	sites  []site
	all    []*Namespace // in creation order
}

type site struct {
	spec   SiteSpec
	router *Namespace
	host   *Namespace
	lan    netip.Prefix
}

// Public is the public host, 198.18.0.1: the relay or rendezvous server.
func (tp *Topology) Public() *Namespace { return tp.public }

// Peer is the second public host, 198.18.0.2, or nil if Spec.Peer was false.
func (tp *Topology) Peer() *Namespace { return tp.peer }

// Sites returns the number of private sites.
func (tp *Topology) Sites() int { return len(tp.sites) }

// Router returns site i's router; its Addr is its public address.
func (tp *Topology) Router(i int) *Namespace { return tp.sites[i].router }

// Host returns the host of site i.
func (tp *Topology) Host(i int) *Namespace { return tp.sites[i].host }

// NAT returns the NAT type of site i.
func (tp *Topology) NAT(i int) NATType { return tp.sites[i].spec.NAT }

// LAN returns site i's private subnet, 10.(100+i).0.0/24.
func (tp *Topology) LAN(i int) netip.Prefix { return tp.sites[i].lan }

// Namespaces returns every namespace of the topology, the switch included.
func (tp *Topology) Namespaces() []*Namespace {
	return append([]*Namespace(nil), tp.all...)
}

// Prefix is the start of the names of all the topology's namespaces.
func (tp *Topology) Prefix() string { return tp.prefix }

var publicNet = netip.MustParsePrefix("198.18.0.0/24")

// publicAddr returns 198.18.0.x/24.
func publicAddr(x int) netip.Prefix {
	a := publicNet.Addr().As4()
	a[3] = byte(x)
	return netip.PrefixFrom(netip.AddrFrom4(a), publicNet.Bits())
}

// lanAddr returns 10.(100+i).0.x/24.
func lanAddr(i, x int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + i), 0, byte(x)}), 24)
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
	tp := &Topology{prefix: runPrefix()}
	mk := func(role string, addr netip.Prefix, link string) *Namespace {
		n := &Namespace{name: tp.prefix + role, addr: addr, link: link}
		tp.all = append(tp.all, n)
		return n
	}
	tp.sw = mk("sw", netip.Prefix{}, "br0")
	tp.public = mk("pub", publicAddr(1), "eth0")
	if spec.Peer {
		tp.peer = mk("peer", publicAddr(2), "eth0")
	}
	for i, s := range spec.Sites {
		tp.sites = append(tp.sites, site{
			spec:   s,
			router: mk("r"+strconv.Itoa(i), publicAddr(10+i), "eth0"),
			host:   mk("h"+strconv.Itoa(i), lanAddr(i, 2), "eth0"),
			lan:    lanAddr(i, 0),
		})
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
	batch(tp.sw, "link set lo up")
	batch(tp.sw, "link add br0 type bridge")
	batch(tp.sw, "link set br0 up")
	publicSide := []*Namespace{tp.public}
	if tp.peer != nil {
		publicSide = append(publicSide, tp.peer)
	}
	for _, s := range tp.sites {
		publicSide = append(publicSide, s.router)
	}
	port := func(n *Namespace) string { return "p" + strings.TrimPrefix(n.name, tp.prefix) }
	for _, n := range publicSide {
		batch(n, "link set lo up")
		batch(n, "link add eth0 type veth peer name %s netns %s", port(n), tp.sw.name)
		batch(n, "addr add %s dev eth0", n.addr)
		batch(n, "link set eth0 up")
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
		batch(s.host, "route add default via %s", lanAddr(i, 1).Addr())
	}
	for _, n := range publicSide {
		batch(tp.sw, "link set %s master br0", port(n))
		batch(tp.sw, "link set %s up", port(n))
	}
	// Routes into the LANs of sites without NAT, from everywhere on the
	// public side but their own router.
	for _, s := range tp.sites {
		if s.spec.NAT != None {
			continue
		}
		for _, n := range publicSide {
			if n != s.router {
				batch(n, "route add %s via %s", s.lan, s.router.Addr())
			}
		}
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
// (lan0) only what belongs to a connection the LAN opened, and drop
// unsolicited UDP addressed to the router itself, as a home router's
// stateful firewall does. The last rule matters for hole punching: a
// packet delivered locally is confirmed in conntrack, and its entry then
// clashes with the mapping the LAN host opens towards that same sender a
// moment later, so MASQUERADE moves that mapping to another port and the
// peer's NAT refuses it. Dropped before confirmation, it leaves nothing.
func routerRules(nat NATType) string {
	masq := "-A POSTROUTING -o eth0 -j MASQUERADE"
	if nat == RandomFully {
		masq += " --random-fully"
	}
	return "*nat\n" +
		":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" +
		masq + "\n" +
		"COMMIT\n" +
		"*filter\n" +
		":INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
		"-A INPUT -i eth0 -p udp -m conntrack --ctstate NEW -j DROP\n" +
		"-A FORWARD -i lan0 -o eth0 -j ACCEPT\n" +
		"-A FORWARD -i eth0 -o lan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n" +
		"COMMIT\n"
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
