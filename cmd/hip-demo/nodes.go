package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/hipnet"
)

// tracer is A's UDP socket, printing each HIP control packet it sends or
// receives and counting ESP.
type tracer struct {
	net.PacketConn
	verbose bool
	mu      sync.Mutex
	n       int
	esp     [2]int // sent, received
	espB    [2]int
}

func (t *tracer) trace(dir string, b []byte, peer net.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(b) >= 4 && b[0]|b[1]|b[2]|b[3] == 0 {
		t.n++
		p, err := wire.ParseUDPControl(b)
		if err != nil {
			fmt.Printf("#%d %s %v  unparsable control packet: %v\n", t.n, dir, peer, err)
			return
		}
		fmt.Printf("#%d A %s %v  %v, %d octets in UDP\n", t.n, dir, peer, p.Type(), len(b))
		for _, line := range strings.Split(strings.TrimRight(wire.Format(p), "\n"), "\n") {
			fmt.Printf("    %s\n", line)
		}
		if t.verbose {
			fmt.Print(indent(hex.Dump(b)))
		}
		return
	}
	i := 0
	if dir == "<-" {
		i = 1
	}
	t.esp[i]++
	t.espB[i] += len(b)
}

func (t *tracer) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := t.PacketConn.ReadFrom(b)
	if err == nil {
		t.trace("<-", b[:n], from)
	}
	return n, from, err
}

func (t *tracer) WriteTo(b []byte, to net.Addr) (int, error) {
	t.trace("->", b, to)
	return t.PacketConn.WriteTo(b, to)
}

func indent(s string) string {
	return "      " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n      ") + "\n"
}

func runNodes(kt hostid.KeyType, verbose bool) error {
	fmt.Println("hip-demo: two hipnet nodes on loopback meet by HIT")
	idA, err := hipnet.GenerateIdentityOf(kt)
	if err != nil {
		return err
	}
	idB, err := hipnet.GenerateIdentityOf(kt)
	if err != nil {
		return err
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	tr := &tracer{PacketConn: udp, verbose: verbose}
	b, err := hipnet.NewNode(hipnet.Config{Identity: idB, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer b.Close()
	a, err := hipnet.NewNode(hipnet.Config{Identity: idA, PacketConn: tr,
		Peers: map[hipnet.HIT][]netip.AddrPort{b.HIT(): {b.LocalAddr()}}})
	if err != nil {
		return err
	}
	defer a.Close()
	fmt.Printf("\nnode A  HIT %v  UDP %v  (%v)\n", a.HIT(), a.LocalAddr(), kt)
	fmt.Printf("node B  HIT %v  UDP %v\n", b.HIT(), b.LocalAddr())
	fmt.Printf("A knows only B's HIT and UDP address.\n")

	// B: a stream service on port 7 and a datagram endpoint on 5683.
	ln, err := b.Listen("tcp", ":7")
	if err != nil {
		return err
	}
	defer ln.Close()
	seen := make(chan string, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line := make([]byte, 256)
				n, _ := c.Read(line)
				seen <- fmt.Sprintf("stream from %v: %q", c.RemoteAddr(), line[:n])
				fmt.Fprintf(c, "hello %v, this is %v", c.RemoteAddr().(*hipnet.Addr).HIT, b.HIT())
			}()
		}
	}()
	pc, err := b.ListenPacket("udp", ":5683")
	if err != nil {
		return err
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			seen <- fmt.Sprintf("datagram from %v: %q", from, buf[:n])
			pc.WriteTo([]byte(strings.ToUpper(string(buf[:n]))), from)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Printf("\n== A dials [%v]:7 ==\n", b.HIT())
	start := time.Now()
	c, err := a.DialContext(ctx, "tcp", (&hipnet.Addr{HIT: b.HIT(), Port: 7}).String())
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	dialT := time.Since(start)
	if _, err := fmt.Fprintf(c, "hello from %v", a.HIT()); err != nil {
		return err
	}
	reply, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	rtt := time.Since(start)
	c.Close()
	fmt.Printf("\nstream: dial (base exchange + QUIC over ESP) %v, first answer after %v\n", dialT.Round(time.Microsecond), rtt.Round(time.Microsecond))
	fmt.Printf("  B %s\n  A got %q\n", <-seen, reply)

	start = time.Now()
	dc, err := a.DialContext(ctx, "udp", (&hipnet.Addr{HIT: b.HIT(), Port: 5683}).String())
	if err != nil {
		return err
	}
	defer dc.Close()
	if _, err := dc.Write([]byte("ping over esp")); err != nil {
		return err
	}
	dc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, err := dc.Read(buf)
	if err != nil {
		return fmt.Errorf("datagram: %w", err)
	}
	fmt.Printf("\ndatagram: round trip %v\n  B %s\n  A got %q from %v\n", time.Since(start).Round(time.Microsecond), <-seen, buf[:n], dc.RemoteAddr())

	fmt.Printf("\n== associations ==\n")
	for _, side := range []struct {
		name string
		n    *hipnet.Node
	}{{"A", a}, {"B", b}} {
		for _, p := range side.n.Peers() {
			fmt.Printf("%s: peer %v %s via %v (%s)\n   HIT suite %s, DH %s, HIP cipher %s, ESP %s\n   SPI in %#08x out %#08x, %d B in / %d B out, %d / %d packets, up %v\n",
				side.name, p.HIT, p.State, p.Locator, p.Path, p.HITSuite, p.DHGroup, p.HIPCipher, p.ESPSuite,
				p.InSPI, p.OutSPI, p.BytesIn, p.BytesOut, p.PacketsIn, p.PacketsOut, time.Since(p.Since).Round(time.Millisecond))
		}
	}
	tr.mu.Lock()
	fmt.Printf("A's socket: %d HIP control packets so far; ESP %d sent (%d B), %d received (%d B)\n", tr.n, tr.esp[0], tr.espB[0], tr.esp[1], tr.espB[1])
	tr.mu.Unlock()

	fmt.Printf("\n== A closes ==\n")
	if err := a.Close(); err != nil {
		return err
	}
	fmt.Printf("\nOK: A and B met by HIT, exchanged a stream and a datagram, and closed.\n")
	_ = os.Stdout.Sync()
	return nil
}
