// Package netmon notices when this host's own addresses change (Wi-Fi to
// LTE, DHCP renumbering, a link going down), so that a HIP node can
// announce its new locators in a LOCATOR_SET (RFC 8046 §5.2, Sending
// LOCATOR_SETs; the mobility exchange itself is §3.2.1).
//
// # What the room holds
//
//   - Monitor and Options (monitor.go): New, Addrs, Changes, Close; the
//     re-read that replaces the current set and signals Changes only when
//     the set differs.
//   - The filter (addrs.go): which addresses are usable (unicast, not
//     loopback, link-local, multicast or unspecified; not tentative,
//     DAD-failed or deprecated; not of host scope; only on interfaces that
//     are up and running) and the sorted, duplicate-free set of them.
//   - Following notifications (watch.go): wake-ups are coalesced for
//     Options.Settle and then the whole address list is read again; a
//     notification's content is never applied as a delta, so lost
//     notifications (ENOBUFS) cost only an extra read.
//   - Polling (poll.go): a read every Options.Poll, with net.Interfaces as
//     the address source where there is no netlink.
//   - Linux (netlink_linux.go): one NETLINK_ROUTE socket joined to
//     RTMGRP_LINK, RTMGRP_IPV4_IFADDR and RTMGRP_IPV6_IFADDR for the
//     wake-ups, and one for RTM_GETLINK and RTM_GETADDR dumps, which give
//     the IFA_F_* flags that package net does not. Both are opened by
//     New on its caller's thread, so the monitor follows the network
//     namespace that thread was in (see New). Everything else
//     (source_other.go) polls net.Interfaces.
//
// # What it must not do
//
// It decides nothing about HIP: which address to prefer, whether and when
// to send a LOCATOR_SET or an UPDATE, which association moves, are the
// caller's (locator/, overlay/). It never sends a packet on any network
// and changes nothing on the host: its only traffic is netlink requests to
// the local kernel, and it only reads. It imports nothing of hipnet.
//
// # Goroutines
//
// One per Monitor, started by New and ended (and waited for) by Close:
// Monitor.run, which follows the netlink notifications (watch) or, on
// systems without netlink, when the notification socket cannot be opened
// or after it fails, polls (pollLoop). Nothing else runs in the
// background: Addrs and Changes only read what it left.
package netmon
