// hip-demo -core runs hipnet's protocol core end to end between two hosts
// in one process, and prints what crosses the wire.
//
// Host A and host B each get a fresh host identity (ECDSA P-256, or RSA-2048
// with -rsa) and a handshake.Endpoint with the default Config. The demo then
//
//  1. runs the HIPv2 base exchange (RFC 7401 §6.6) from A to B: I1, R1, I2,
//     R2, each packet framed for UDP with the non-ESP marker
//     (RFC 5770 §5.1) and printed parameter by parameter;
//  2. prints both HITs, the negotiated suites and SPIs, and the time the
//     exchange took;
//  3. sends an ESP packet (RFC 4303, RFC 7402) each way on the negotiated
//     SAs, carrying a BEET inner UDP datagram between the two HITs;
//  4. rekeys the ESP SAs with an UPDATE exchange (RFC 7402 §6.8) and checks
//     the new SAs with another round trip;
//  5. closes the association from A with CLOSE/CLOSE_ACK (RFC 7401 §5.3.7).
//
// Packets travel through an in-memory queue, and the wall clock drives the
// sans-I/O state machines.

package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// runCore is the -core demo: the sans-I/O protocol core alone.
func runCore(kt hostid.KeyType, verbose bool) error {
	d := &demo{out: os.Stdout, verbose: verbose}
	return d.run(kt)
}

// host is one side: its Endpoint, its association with the other host, and
// the SAs and events the association reported.
type host struct {
	name   string
	e      *handshake.Endpoint
	a      *handshake.Association
	events []handshake.Event
}

func (h *host) hit() wire.HIT { return h.e.HIT() }

// has reports whether h has seen an event of kind k, and returns the last one.
func (h *host) has(k handshake.EventKind) (handshake.Event, bool) {
	for i := len(h.events) - 1; i >= 0; i-- {
		if h.events[i].Kind == k {
			return h.events[i], true
		}
	}
	return handshake.Event{}, false
}

// datagram is one UDP payload in flight.
type datagram struct {
	from, to *host
	b        []byte
}

type demo struct {
	out     io.Writer
	verbose bool
	queue   []datagram
	sent    int
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

func (d *demo) run(kt hostid.KeyType) error {
	d.printf("hip-demo: HIPv2 base exchange, ESP, rekey and CLOSE between two in-memory hosts\n")
	start := time.Now()
	a, err := newHost("A", kt)
	if err != nil {
		return err
	}
	b, err := newHost("B", kt)
	if err != nil {
		return err
	}
	d.printf("\nidentities: %v (generated in %v)\n", kt, time.Since(start).Round(time.Millisecond))
	d.printf("  HIT A  %v\n  HIT B  %v\n", a.hit(), b.hit())

	// 1. Base exchange.
	d.section("Base exchange")
	t0 := time.Now()
	a.a = a.e.Initiate(t0, b.hit())
	a.events = append(a.events, a.a.Events()...)
	d.send(a, b, a.a.Outgoing())
	done := func() bool {
		_, ea := a.has(handshake.EventEstablished)
		_, eb := b.has(handshake.EventEstablished)
		return ea && eb
	}
	if err := d.shuttle(done); err != nil {
		return fmt.Errorf("base exchange: %w", err)
	}
	bexTime := time.Since(t0)
	if a.a == nil || b.a == nil {
		return errors.New("base exchange: a host has no association")
	}
	d.printf("\nbase exchange complete in %v (%d packets)\n", bexTime.Round(time.Microsecond), d.sent)
	d.printInfo(a, b)

	// 2. ESP both ways on the SAs from EventEstablished.
	d.section("ESP round trip")
	ea, _ := a.has(handshake.EventEstablished)
	eb, _ := b.has(handshake.EventEstablished)
	if err := d.roundTrip(a, b, ea, eb); err != nil {
		return err
	}
	// ESP from the Initiator completes the exchange for the Responder
	// (R2-SENT -> ESTABLISHED, RFC 7401 §4.4.3).
	b.a.DataReceived(time.Now())
	b.events = append(b.events, b.a.Events()...)
	d.printf("\nstates: A %v, B %v\n", a.a.State(), b.a.State())
	if a.a.State() != handshake.Established || b.a.State() != handshake.Established {
		return errors.New("associations not ESTABLISHED after ESP")
	}

	// 3. Rekey from A.
	d.section("Rekey (UPDATE with ESP_INFO, new keys from KEYMAT)")
	oldA, oldB := a.a.Info(), b.a.Info()
	nRekeyed := func(h *host) int {
		n := 0
		for _, e := range h.events {
			if e.Kind == handshake.EventRekeyed {
				n++
			}
		}
		return n
	}
	if err := a.a.Rekey(time.Now(), false); err != nil {
		return fmt.Errorf("rekey: %w", err)
	}
	d.send(a, b, d.drain(a))
	if err := d.shuttle(func() bool { return nRekeyed(a) > 0 && nRekeyed(b) > 0 }); err != nil {
		return fmt.Errorf("rekey: %w", err)
	}
	newA, newB := a.a.Info(), b.a.Info()
	d.printf("\nSPIs before: A in 0x%08x out 0x%08x, B in 0x%08x out 0x%08x\n", oldA.InSPI, oldA.OutSPI, oldB.InSPI, oldB.OutSPI)
	d.printf("SPIs after:  A in 0x%08x out 0x%08x, B in 0x%08x out 0x%08x\n", newA.InSPI, newA.OutSPI, newB.InSPI, newB.OutSPI)
	if newA.InSPI == oldA.InSPI || newA.OutSPI == oldA.OutSPI || newA.OutSPI != newB.InSPI || newB.OutSPI != newA.InSPI {
		return errors.New("rekey: SPIs were not renewed or do not pair")
	}
	ra, _ := a.has(handshake.EventRekeyed)
	rb, _ := b.has(handshake.EventRekeyed)
	if err := d.roundTrip(a, b, ra, rb); err != nil {
		return fmt.Errorf("after rekey: %w", err)
	}

	// 4. CLOSE from A.
	d.section("Close")
	a.a.Close(time.Now())
	d.send(a, b, d.drain(a))
	closed := func() bool {
		_, ca := a.has(handshake.EventClosed)
		_, cb := b.has(handshake.EventClosed)
		return ca && cb
	}
	if err := d.shuttle(closed); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	d.printf("\nfinal states: A %v, B %v\n", a.a.State(), b.a.State())
	if a.a.State() != handshake.Unassociated || b.a.State() != handshake.Closed {
		return fmt.Errorf("close: final states A %v, B %v; want UNASSOCIATED and CLOSED", a.a.State(), b.a.State())
	}
	d.printf("\nOK: %d HIP packets, every step succeeded\n", d.sent)
	return nil
}

func newHost(name string, kt hostid.KeyType) (*host, error) {
	k, err := hostid.Generate(kt, nil)
	if err != nil {
		return nil, fmt.Errorf("host %s: generating identity: %w", name, err)
	}
	e, err := handshake.NewEndpoint(handshake.Config{Identity: k}, time.Now())
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	return &host{name: name, e: e}, nil
}

func (d *demo) section(title string) {
	d.printf("\n== %s %s\n", title, strings.Repeat("=", max(0, 70-len(title))))
}

// drain collects h's events and returns its outgoing packets.
func (d *demo) drain(h *host) [][]byte {
	if h.a == nil {
		return nil
	}
	h.events = append(h.events, h.a.Events()...)
	return h.a.Outgoing()
}

// send frames HIP packets for UDP and queues them from one host to the other.
func (d *demo) send(from, to *host, pkts [][]byte) {
	for _, p := range pkts {
		d.queue = append(d.queue, datagram{from, to, wire.AppendUDPControl(nil, p)})
	}
}

// shuttle delivers queued datagrams, printing each, until done reports
// true. Running out of packets first, or a packet a host rejects, is an
// error: in memory nothing is lost, so nothing needs a retransmission.
func (d *demo) shuttle(done func() bool) error {
	for n := 0; !done(); n++ {
		if len(d.queue) == 0 {
			return errors.New("no more packets to deliver, but the exchange is not complete")
		}
		if n > 50 {
			return errors.New("too many packets: the exchange does not converge")
		}
		dg := d.queue[0]
		d.queue = d.queue[1:]
		if err := d.deliver(dg); err != nil {
			return err
		}
	}
	if len(d.queue) > 0 {
		return fmt.Errorf("%d packets left over after the exchange completed", len(d.queue))
	}
	return nil
}

func (d *demo) deliver(dg datagram) error {
	pkt, err := wire.ParseUDPControl(dg.b)
	if err != nil {
		return fmt.Errorf("%s -> %s: unparsable packet: %w", dg.from.name, dg.to.name, err)
	}
	d.sent++
	d.printPacket(dg, pkt)
	to := dg.to
	res, err := to.e.Handle(time.Now(), pkt, to.a)
	if err != nil {
		return fmt.Errorf("%s rejected %v from %s: %w", to.name, pkt.Type(), dg.from.name, err)
	}
	if res.Reply != nil {
		d.send(to, dg.from, [][]byte{res.Reply})
	}
	if res.Assoc != nil {
		to.a = res.Assoc
	}
	d.send(to, dg.from, d.drain(to))
	for _, e := range to.events {
		if e.Kind == handshake.EventFailed || e.Kind == handshake.EventNotify {
			return fmt.Errorf("%s: %v: %v", to.name, e.Kind, e.Err)
		}
	}
	return nil
}

// printPacket shows one HIP packet: direction, type and sizes, then
// wire.Format's header and parameter lines indented below.
func (d *demo) printPacket(dg datagram, p wire.Packet) {
	d.printf("\n#%d %s -> %s  %v  %d octets (%d in UDP with the non-ESP marker)\n",
		d.sent, dg.from.name, dg.to.name, p.Type(), len(p), len(dg.b))
	for _, line := range strings.Split(wire.Format(p), "\n") {
		d.printf("    %s\n", strings.TrimLeft(line, " "))
	}
	if d.verbose {
		d.hexDump(dg.b)
	}
}

func (d *demo) hexDump(b []byte) {
	for _, line := range strings.SplitAfter(strings.TrimRight(hex.Dump(b), "\n"), "\n") {
		d.printf("      %s", line)
	}
	d.printf("\n")
}

func (d *demo) printInfo(a, b *host) {
	for _, h := range []*host{a, b} {
		in := h.a.Info()
		role := "Responder"
		if in.Initiator {
			role = "Initiator"
		}
		d.printf("  %s (%s) %v  state %v\n", h.name, role, h.hit(), in.State)
		d.printf("    HIT suite %v, DH %s, HIP cipher %s, ESP %v\n",
			in.HITSuite, wire.DHGroupName(in.DHGroup), wire.CipherName(in.HIPCipher), in.ESPSuite)
		d.printf("    SPI in 0x%08x, out 0x%08x\n", in.InSPI, in.OutSPI)
	}
}

// roundTrip sends a BEET UDP datagram from a to b on a's outbound and b's
// inbound SA from the events ea and eb, and a reply the other way.
func (d *demo) roundTrip(a, b *host, ea, eb handshake.Event) error {
	const portA, portB = 40000, 7
	if err := d.esp(a, b, ea.Outbound, eb.Inbound, portA, portB); err != nil {
		return err
	}
	return d.esp(b, a, eb.Outbound, ea.Inbound, portB, portA)
}

func (d *demo) esp(from, to *host, out, in esp.Config, sport, dport uint16) error {
	o, err := esp.NewOutbound(out)
	if err != nil {
		return fmt.Errorf("%s outbound SA: %w", from.name, err)
	}
	i, err := esp.NewInbound(in)
	if err != nil {
		return fmt.Errorf("%s inbound SA: %w", to.name, err)
	}
	msg := "hello, " + to.hit().String()
	seg := esp.AppendUDP(nil, from.hit(), to.hit(), sport, dport, []byte(msg))
	sealed, err := o.Seal(nil, seg, esp.ProtoUDP)
	if err != nil {
		return fmt.Errorf("%s seal: %w", from.name, err)
	}
	d.printf("\nESP %s -> %s  SPI 0x%08x seq %d  %s\n", from.name, to.name, o.SPI(), o.Seq(), hexPrefix(sealed))
	d.printf("    inner UDP [%v]:%d -> [%v]:%d, %d octets, %s\n", from.hit(), sport, to.hit(), dport, len(seg), o.Suite())
	if d.verbose {
		d.hexDump(sealed)
	}
	if bytes.Contains(sealed, []byte(msg)) && o.Suite() != esp.SuiteNullSHA256 {
		return fmt.Errorf("%s: plaintext visible in the ESP packet", from.name)
	}
	pt, nh, err := i.Open(nil, sealed)
	if err != nil {
		return fmt.Errorf("%s open: %w", to.name, err)
	}
	if nh != esp.ProtoUDP {
		return fmt.Errorf("%s open: next header %d, want UDP", to.name, nh)
	}
	gotS, gotD, payload, err := esp.ParseUDP(pt, from.hit(), to.hit())
	if err != nil {
		return fmt.Errorf("%s inner UDP: %w", to.name, err)
	}
	if gotS != sport || gotD != dport || string(payload) != msg {
		return fmt.Errorf("%s received %d->%d %q, want %d->%d %q", to.name, gotS, gotD, payload, sport, dport, msg)
	}
	d.printf("    %s opened it: UDP %d -> %d %q\n", to.name, gotS, gotD, payload)
	return nil
}

// hexPrefix shows the first 16 octets of b in hex and its size.
func hexPrefix(b []byte) string {
	const n = 16
	if len(b) <= n {
		return fmt.Sprintf("%x (%d octets)", b, len(b))
	}
	return fmt.Sprintf("%x… (%d octets)", b[:n], len(b))
}
