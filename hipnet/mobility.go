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
// watches; a failure to watch is logged and the node runs without. The
// monitor watches the network namespace of the thread that calls NewNode
// (internal/netmon).
func watchAddrs(cfg Config, listen string) *netmon.Monitor {
	if cfg.DisableAddrWatch || !unspecified(cfg, listen) {
		return nil
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

// unspecified reports whether the node's socket is bound to the
// unspecified address: Config.PacketConn's, or ListenAddr's.
func unspecified(cfg Config, listen string) bool {
	if cfg.PacketConn != nil {
		ua, ok := cfg.PacketConn.LocalAddr().(*net.UDPAddr)
		return ok && ua.IP.IsUnspecified()
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsUnspecified()
}

// closeWatch stops m, if there is one.
func closeWatch(m *netmon.Monitor) {
	if m != nil {
		m.Close()
	}
}
