// Package resolve maps names to HITs, so that applications can dial
// "device42:8883" or "device42.example.com:8883" instead of a raw HIT.
//
// # What the room holds
//
//   - Record, what a source says about a name: the HIT, the Host Identity
//     and rendezvous servers if the source gives them, locators, a TTL.
//   - Resolver, the one-method interface hipnet calls, and Chain, which asks
//     several resolvers in order: ErrNotFound moves on to the next, any
//     other error stops the chain (Chain's doc says why).
//   - Hosts and HostsFile, a static table in a file (format below).
//   - DNS, a stub resolver for the HIP resource record, type 55 (RFC 8005),
//     over github.com/miekg/dns: it checks each record's Host Identity
//     against its HIT and refuses records where they disagree; NewHIPRR
//     builds the record a zone publishes for a host identity.
//
// Errors are *Error values (a net.Error: Timeout() is true on expiry)
// wrapping the package's sentinels, which errors.Is recognises: ErrNotFound,
// ErrBadName, ErrHITMismatch, ErrBadRecord, ErrServerFailure,
// ErrNotAuthenticated. Parse errors of a hosts file are *HostsError, with
// the line.
//
// # Names
//
// A name is 1 to 253 octets of labels of letters, digits, '-' and '_',
// joined by dots, and not an IP address; a trailing dot is optional and
// case does not matter: "Device42.", "device42" and "DEVICE42" are one
// name. Record.Name is the canonical form, lower case without the dot.
// Internationalised names must be written in their ASCII (punycode) form.
// DNS queries the name as given, fully qualified: there are no search
// domains, so "device42" is asked as "device42.", not as
// "device42.example.com.".
//
// # Hosts file format
//
// UTF-8 text, one entry per line:
//
//	# comment: '#' starts a comment anywhere on a line
//	name  HIT  [locator ...]
//
//	broker    2001:2a:1b5f:9c1e:2f7b:3a4c:5d6e:7f80  192.0.2.7:10500 [2001:db8::7]:10500
//	device42  2001:2a:3c4d::42                        device42.lan:10500
//	sensor    2001:2a:77::1                           # no locator: reached by HIT alone
//
// Fields are separated by ASCII spaces or tabs; blank lines are skipped. The
// name follows the rules above; the HIT is an IPv6 address in the ORCHIDv2
// prefix 2001:20::/28 (RFC 7343 §2). A locator is a UDP address of the
// peer's HIP socket with its port, which is required: "ip:port",
// "[ipv6]:port" (a zone, "[fe80::1%eth0]:10500", is kept) or
// "host:port", whose host name is looked up at every Resolve through
// net.DefaultResolver with the Resolve's context; a host name whose lookup
// fails is skipped, and the Resolve fails only if every locator of the
// line failed. A name may appear on one line only; several names may
// share a HIT. The first bad line stops the parse with a *HostsError
// naming the line; a bad HIT wraps wire.ErrBadHIT.
//
// # DNS
//
// RFC 8005 §5 (storage format): the RR holds the HIT, a PK algorithm and
// public key, and rendezvous server names. The PK algorithm values are
// those of IPSECKEY (§5.2, §9): 1 DSA, 2 RSA, 3 ECDSA; they are not the HI
// algorithm numbers of HOST_ID (RFC 7401 §5.2.9: 3, 5, 7). RSA keys are
// in the RFC 3110 format (§5.5), the same octets as the RSA HI. ECDSA keys
// are in the RFC 6605 format (§5.5): x | y with no curve field (64 octets
// on P-256, 96 on P-384), so the HI, ECC Curve | point, is rebuilt from
// the length, and the HIT check picks between the point forms 0x04|x|y
// and x|y that HOST_ID may carry (hiprr.go explains; a key field already
// in HOST_ID form is accepted too). DSA and other algorithms are refused
// with hostid.ErrUnsupportedAlgorithm: hipnet does not implement them.
//
// RFC 8005 §4.1: "Upon return of a HIP RR, a host MUST always calculate
// the HI-derivative HIT", so Resolve hashes the HI (ORCHIDv2, RFC 7343 §2,
// with the hash of the HI's HIT suite, RFC 7401 §3 and §5.2.10) and
// compares it with the record's HIT: a record where they differ is refused
// with ErrHITMismatch, never returned. With several HIP RRs at a name
// (§4.2 leaves the choice open) Resolve takes the first usable one in the
// answer, with that RR's own rendezvous servers (§4.2: the RVS used must be
// associated with the HI used), in the RR's order of preference (§5.6).
// CNAMEs in the answer are followed. Unless DNS.NoAddresses is set, the
// name's AAAA and then A records become locators on DNS.Port (10500, the
// HIP over UDP port of RFC 5770 §5.1, unless set): by §4.1 they hold
// either the host's own addresses or its RVS's, and an I1 sent there
// reaches the host either way. The rendezvous servers' names are resolved
// the same way, into Record.RVSLocators on DNS.RVSPort (the HIP port unless
// set: the RR names a server, not its port); a name that does not resolve
// is skipped. Record.TTL carries the smallest TTL of the records used
// (§4.2: a record past it MUST be discarded); this package caches nothing,
// so a node resolves the name again on every dial by name.
//
// # What it must not do
//
// Trust a name. A HIT from DNS, or from a hosts file, is only that
// source's claim about a name. What a name resolution gives is the HIT to
// dial; the base exchange then proves that the peer holds the private key
// of that HIT's HI, and nothing here proves that this HIT is the right one
// for the name. The HI check refuses inconsistent records, not forged ones:
// anyone who can answer for the name (a spoofer, a hostile resolver or
// network, RFC 8005 §8.1) can publish a consistent record with a key of
// their own, and the dial then reaches them, authenticated as themselves
// (RFC 8005 §8.2: do not authenticate a peer by a HIT from DNS alone). An
// application that needs the name bound to the right host pins the HIT
// (a hosts file it controls, or a HIT in the address), or sets
// DNS.RequireAD with a DNSSEC-validating resolver on a trusted path (RFC
// 8005 §8, §8.3). Because of this, a refused record stops a Chain rather
// than falling through to another source.
//
// Nor do I/O behind the caller's back: the network is read only inside a
// Resolve (DNS queries, lookups of hosts locators' host names), bounded by
// its context, and files only by LoadHosts, HostsFile.Reload and a DNS
// Resolve (resolv.conf). No goroutine outlives the call that started it.
package resolve
