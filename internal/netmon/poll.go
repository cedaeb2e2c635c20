package netmon

import (
	"net"
	"net/netip"
	"time"
)

// pollLoop reads the addresses every Poll until Close.
func (m *Monitor) pollLoop() {
	t := time.NewTicker(m.poll)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			if err := m.refresh(); err != nil {
				m.log.Warn("netmon: reading the addresses failed", "err", err)
			}
		}
	}
}

// readInterfaces is the address source of polling without netlink: every
// address of every interface that package net lists, in the network
// namespace of the calling thread on Linux. It knows nothing of tentative
// or deprecated addresses.
func readInterfaces() ([]ifAddr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var list []ifAddr
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue // the interface went away since Interfaces: the next poll sees that
		}
		for _, a := range addrs {
			var ip net.IP
			switch a := a.(type) {
			case *net.IPNet:
				ip = a.IP
			case *net.IPAddr:
				ip = a.IP
			}
			addr, ok := netip.AddrFromSlice(ip)
			if !ok {
				continue
			}
			list = append(list, ifAddr{
				Addr:     addr.Unmap(),
				Up:       ifc.Flags&net.FlagUp != 0 && ifc.Flags&net.FlagRunning != 0,
				Loopback: ifc.Flags&net.FlagLoopback != 0,
			})
		}
	}
	return list, nil
}
