package hipnet

import (
	"net"
	"net/netip"

	"hipnet.dev/internal/netmon"
)

// watchAddrs starts the monitor of this host's addresses that mobility
// needs (Config.DisableAddrWatch): when they change, the node announces
// the new ones to its peers (RFC 8046 §5.2). Only a node listening on the
// unspecified address can send from a new address, so only such a node
// watches; a failure to watch is logged and the node runs without.
func watchAddrs(cfg Config, listen string) *netmon.Monitor {
	if cfg.DisableAddrWatch || cfg.PacketConn != nil {
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	if host != "" {
		if a, err := netip.ParseAddr(host); err != nil || !a.IsUnspecified() {
			return nil
		}
	}
	m, err := netmon.New(netmon.Options{Logger: cfg.Logger})
	if err != nil {
		if cfg.Logger != nil {
			cfg.Logger.Warn("address watch", "err", err)
		}
		return nil
	}
	return m
}

// closeWatch stops m, if there is one.
func closeWatch(m *netmon.Monitor) {
	if m != nil {
		m.Close()
	}
}
