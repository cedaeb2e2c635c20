package overlay

import "hipnet.dev/esp"

// keylog writes one esp_sa line for an installed SA to Config.KeyLog, so
// that Wireshark can decrypt a capture of the node's ESP. The IP family is
// the peer locator's. Control goroutine only (the writer needs no lock).
func (s *Stack) keylog(p *peer, c esp.Config) {
	if s.cfg.KeyLog == nil {
		return
	}
	family := "IPv6"
	if loc, ok := p.locator(); ok && loc.Addr().Is4() {
		family = "IPv4"
	}
	if _, err := s.cfg.KeyLog.Write(esp.AppendWiresharkSA(nil, family, c)); err != nil {
		s.log.Warn("key log write failed", "err", err)
	}
}
