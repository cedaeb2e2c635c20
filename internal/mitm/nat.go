package mitm

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// mapping is one of a Proxy's sockets toward the target: the one the
// target sees the client at now (Proxy.out), or an earlier one a Rebind
// left open (Proxy.old). The first is the client-facing socket itself
// (Proxy.front), until the first Rebind.
type mapping struct {
	conn *net.UDPConn
	addr netip.AddrPort

	// As an old mapping (guarded by Proxy.mu): it forwards until then, or
	// until Close if forever.
	until   time.Time
	forever bool
}

func (m *mapping) kept(now time.Time) bool { return m.forever || now.Before(m.until) }

// TargetFacing is the address the target sees the client's datagrams come
// from: Addr until the first Rebind, then the socket the last one opened.
func (p *Proxy) TargetFacing() netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.addr
}

// SetOldMapping sets what later Rebinds do with the target-facing socket
// they replace, the old mapping: keep == 0 (the default) closes it at
// once, as a NAT that lost its mapping does, so that what the target still
// sends there is lost; keep > 0 keeps forwarding what arrives there to the
// client for keep, then closes it; keep < 0 keeps it until Close. At most
// MaxOldMappings are kept; a Rebind beyond closes the oldest.
//
// The first Rebind's old mapping is Addr itself, which stays open for the
// client: what the target sends there once it is closed is dropped,
// recorded and counted (Counts.Dropped) instead of going unseen.
func (p *Proxy) SetOldMapping(keep time.Duration) {
	p.mu.Lock()
	p.keepOld = keep
	p.mu.Unlock()
}

// Rebind is RebindTo the address of the target-facing socket now.
func (p *Proxy) Rebind() (netip.AddrPort, error) {
	return p.RebindTo(p.TargetFacing().Addr())
}

// RebindTo moves the target-facing side of the proxy to a new socket on
// ip (a loopback address of the target's family: any of 127/8 on Linux,
// or ::1) and an ephemeral port, as a NAT whose mapping changed does: the
// target sees the client's datagrams, forwarded, injected or released,
// come from the returned address (TargetFacing) from now on, and what
// arrives there (from the target, or anyone) goes to the client. The client sees no change: Addr stays.
// What becomes of the old mapping is SetOldMapping's choice.
func (p *Proxy) RebindTo(ip netip.Addr) (netip.AddrPort, error) {
	ip = ip.Unmap()
	if ip.Is4() != p.target.Addr().Is4() {
		return netip.AddrPort{}, fmt.Errorf("mitm: cannot rebind to %v in front of %v", ip, p.target)
	}
	conn, addr, err := listenUDP(netip.AddrPortFrom(ip, 0))
	if err != nil {
		return netip.AddrPort{}, err
	}
	now := time.Now()
	var toClose []*net.UDPConn
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		conn.Close()
		return netip.AddrPort{}, net.ErrClosed
	}
	prev := p.out
	p.out = &mapping{conn: conn, addr: addr}
	// Expired old mappings on the client-facing socket have nothing to
	// close; the others end themselves at their deadline (retire).
	p.old = slices.DeleteFunc(p.old, func(m *mapping) bool { return m == p.front && !m.kept(now) })
	switch {
	case p.keepOld != 0:
		prev.forever = p.keepOld < 0
		prev.until = now.Add(p.keepOld)
		p.old = append(p.old, prev)
		if prev != p.front && !prev.forever {
			// Its goroutine reads until then, closes it and ends.
			prev.conn.SetReadDeadline(prev.until)
		}
	case prev != p.front:
		toClose = append(toClose, prev.conn)
	}
	for len(p.old) > MaxOldMappings {
		if m := p.old[0]; m != p.front {
			toClose = append(toClose, m.conn)
		}
		p.old = p.old[1:]
	}
	p.wg.Add(1)
	go p.loop(p.out)
	p.mu.Unlock()
	for _, c := range toClose {
		c.Close()
	}
	return addr, nil
}

// frontKept reports whether the client-facing socket, which a Rebind
// turned into an old mapping, still forwards what the target sends to it;
// p.mu is held.
func (p *Proxy) frontKept(now time.Time) bool {
	i := slices.Index(p.old, p.front)
	return i >= 0 && p.old[i].kept(now)
}

// retire closes a target-facing socket whose goroutine ended (closed, or
// its time as an old mapping up) and forgets it.
func (p *Proxy) retire(m *mapping) {
	m.conn.Close()
	p.mu.Lock()
	p.old = slices.DeleteFunc(p.old, func(o *mapping) bool { return o == m })
	p.mu.Unlock()
}

// targetFacing returns the target-facing sockets other than the
// client-facing one, for Close; p.mu is held.
func (p *Proxy) targetFacing() []*net.UDPConn {
	var out []*net.UDPConn
	if p.out != p.front {
		out = append(out, p.out.conn)
	}
	for _, m := range p.old {
		if m != p.front {
			out = append(out, m.conn)
		}
	}
	return out
}
