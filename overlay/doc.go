// Package overlay is hipnet's in-process stack: the one place with
// sockets, goroutines and clocks. It owns one UDP socket per node and
// demultiplexes it (RFC 5770 §5.1, RFC 3948: a zero marker means HIP
// control, a non-zero SPI means ESP, a STUN cookie means STUN), runs the
// sans-I/O handshake state machines with their timers, keeps the
// association table (a map, not go-memdb: store.go says why) with an
// allocation-free SPI → SA lookup on the data path, and carries inner UDP
// (BEET, RFC 7402 App. B) between HITs: datagram endpoints for
// ListenPacket, and the transport of the QUIC streams of package streams
// (the layer above this one).
//
// # Using it
//
// New starts a Stack from a Config (identity, UDP address, optional
// Authorize, Logger, KeyLog, handshake overrides, queue bound). AddPeer
// gives a peer's locator; Connect runs the base exchange and waits for it;
// ConnectKeyed returns as soon as the Initiator's keys exist (its I2 is
// sent), so that a layer above can build its first packets while the R2
// is on its way: they wait in the association's queue;
// ListenInner binds an inner UDP port and returns an InnerConn, a
// net.PacketConn whose addresses are *Addr (peer HIT and port): WriteTo
// starts the base exchange itself when there is no association and queues
// (bounded by Config.QueueLimit, ErrQueueFull beyond) until it completes.
// STUNBinding asks a STUN server for the server-reflexive address of the
// node's socket; Config.STUNServer makes the node answer such requests.
// Register asks a registrar for services (RFC 8003), in I2 or by UPDATE;
// a stack whose Handshake.Registrar is set answers such requests with its
// Decide. Config.Forwarder plugs a relay server (package relay) into the
// stack: it is handed what reaches the socket but is not addressed to us.
// Peers and Stats report the associations and the counters; Close sends
// CLOSE to every peer, waits up to a second for the CLOSE_ACKs and stops
// everything. Errors satisfy errors.Is with the sentinels of errors.go
// (and ErrSTUNTimeout, ErrSTUNFailed of stun.go, ErrRegistrationRefused
// of registration.go).
//
// # What the room holds, file by file
//
//   - demux.go: Classify, the pure function that tells the three kinds of
//     packet on the port apart (and the invalid rest).
//   - socket.go, socket_linux.go: the UDP socket; batched I/O through
//     internal/udpbatch with a *net.UDPConn (recvmmsg/GRO, sendmmsg/GSO on
//     Linux), one datagram per call otherwise.
//   - tx.go: the transmit queue and the sender goroutine that writes it in
//     batches.
//   - segment.go: inner segments of protocols other than UDP
//     (WriteSegment, HandleSegments, SetSegmentReopens), for a transport
//     above the stack.
//   - secret.go: the secret exported from each association for the layers
//     above (AssociationSecret).
//   - receive.go: the read loop and the inbound data path (ESP → SPI →
//     SA → Open with anti-replay → inner UDP → the port's inbox).
//   - send.go: the outbound data path (seal with the peer's outbound SA and
//     send to its locator, or queue while the base exchange runs) and the
//     flush of that queue.
//   - pmtu.go, pmtu_linux.go: MaxDatagram, the largest inner datagram the
//     path to a peer carries unfragmented, from the kernel's route MTU
//     (a stream transport sizes its packets by it).
//   - control.go: the control goroutine, sole owner of the
//     handshake.Endpoint and every handshake.Association: its loop, the
//     commands other goroutines send it (one type each), and the handling
//     of the associations' events. Split by concern beside it:
//     inbound.go (one control packet from the read loop to the Endpoint,
//     with its context passed down as an argument; Config.Authorize and
//     the bound NOTIFY BLOCKED_BY_POLICY are applied there), sas.go (SAs
//     in and out of the data path, rekeys, SPI allocation), connect.go
//     (Connect, the data path's pokes, waiters), shutdown.go (Close).
//   - timers.go: the control goroutine's one timer heap: every protocol
//     timer of the stack (retransmission, state lifetimes, locator checks,
//     the tick of rekeys by policy and of the keepalives of associations
//     without a locator Set, R1 rotation, the puzzle's load window, the
//     rekey switch, Close's wait), and the wake-ups the other goroutines wait
//     for (Stack.after: the relay loops' keepalives and back-offs, STUN
//     retransmissions, the ICE sessions' pacing and timeout). Asking for
//     one never waits for the control goroutine (it is queued, as a poke
//     is), because the control goroutine waits for some of those who ask
//     (an ICE session's Close). Only pion/ice keeps a clock of its own.
//   - store.go: the association table, the source of truth for Peers,
//     PeerIdentity, Stats and WatchAssociation (and why it is not
//     go-memdb, as DESIGN.md has it); satable.go: the data path's
//     copy-on-write SPI → SA table derived from it.
//   - peer.go: the per-peer struct (atomics for the data path, a mutex for
//     the queue, fields only the control goroutine touches).
//   - inner.go, queue.go: InnerConn, its deadlines, its bounded inbox of
//     pooled buffers.
//   - registration.go: RFC 8003 on top of the handshake's registration
//     events: the requester's Register (the registrar's table is the
//     relay server's, package relay).
//   - forwarder.go: the Forwarder hook, the one place a relay server meets
//     the stack: control packets for other HITs and ESP for SPIs that are
//     not ours go to it; a Host handle lends it the associations' keys for
//     RELAY_HMAC and RVS_HMAC during its call.
//   - rendezvous.go: the node's two ends of RFC 8004: a rendezvous
//     client's checked FROM/RVS_HMAC I1s, answered directly with VIA_RVS,
//     and an Initiator following the R1 of an I1 it sent to a server.
//   - relayclient.go, path.go, opportunistic.go: a relay's client (below):
//     the registrations and their keepalives; the relay and ICE paths of
//     an association (RELAY_FROM, RELAY_TO, ICE's nomination handed to the
//     locator Set, control packets on the ESP's path); base exchanges
//     with a relay known by its address only.
//   - stun.go: STUN Binding on the node's port with pion/stun: the
//     stateless, allocation-free binding service of Config.STUNServer
//     (answered from the read loop) and STUNBinding, which learns the
//     server-reflexive address of the node's own socket (RFC 8489, RFC
//     5770 §4.2, §5.3).
//   - locators.go: the path of every association, through the peer's
//     locator.Set: mobility and multihoming of direct associations (RFC
//     8046, RFC 8047), and the choice between the relay and the pair ICE
//     nominated (RFC 5770); the Set fed with what the data path counts,
//     the relay's registration and ICE's nomination, its probes sent as
//     UPDATEs with ECHO_REQUEST_SIGNED (through the relay for the relay
//     locator), its keepalives as ESP dummy packets, its switches applied
//     to the peer's locator (a fallback to the relay rekeys through it);
//     the NAT keepalives of associations without a Set; inflight.go: the copies of
//     what was sent into a suspect path, sent again on the new one;
//     mobility.go: our own addresses announced in LOCATOR_SET when
//     Config.WatchAddrs reports a change; dial.go: a dial over several
//     configured locators (Happy Eyeballs) and its DialError; idle.go:
//     Config.IdleTimeout; rekeying.go: rekeys by time and volume.
//   - keylog.go, stats.go: the Wireshark ESP key log and the counters.
//   - ratelimit.go: the R1 rate limits per source, per address and in
//     total (RFC 7401 §6.7, §9), so that the node is no reflector.
//   - puzzle.go: the solver goroutines for puzzles too hard to solve on the
//     control goroutine (handshake EventPuzzle).
//
// # Goroutines and locking
//
// Every goroutine a Stack starts, and how many (TestGoroutines counts
// them):
//
//   - the read loop (receive.go), the sender (tx.go) and the control
//     goroutine (control.go): one each, for the stack's life;
//   - the echo service of EchoPort (status.go): one, for the stack's life;
//   - one relay loop per Config.Relays entry (relayclient.go), keeping its
//     registration and NAT mapping alive; a Forwarder (a relay server)
//     starts none in the stack (package relay lists its own);
//   - per ICE session with a peer behind a relay (path.go, nat.Session):
//     two (its agent loop and its check pacer), for the session's life;
//   - per puzzle too hard to solve inline (puzzle.go): one solver, until it
//     answers or the puzzle's lifetime ends (at most GOMAXPROCS search at
//     once);
//   - in New, when the stack's socket lives in another network namespace
//     than the calling thread (pmtu_linux.go): one, on a locked thread,
//     for the two socket calls made inside that namespace; New waits for
//     it.
//
// A plain node therefore runs four; with n relays, 4+n; with a
// Forwarder, four.
// Mobility starts none: the locator checks run on the control goroutine,
// which also reads Config.WatchAddrs' channel (the watcher's own goroutine
// is its owner's: package hipnet's address monitor).
// Beside them the runtime runs the callbacks of InnerConn deadline timers
// (time.AfterFunc). None is started per packet, and Close stops them all.
// Callers' goroutines block in Connect, ConnectKeyed, Register and STUNBinding, which
// wait on the control goroutine and on their own timers.
//
// The read loop opens ESP itself and never blocks: control packets are
// copied to the control goroutine over one of two bounded channels (those
// claiming a known peer, I1s excepted, over the one it serves first),
// dropped and counted when it is full; I1s over the R1 limits are dropped
// before (ratelimit.go); inner datagrams go to a bounded inbox (dropped
// and counted when the reader lags), STUN answers go to the waiting
// STUNBinding over a channel that always has room for them. Its one write
// is the answer to a STUN Binding Request (Config.STUNServer), one per
// request, which waits at most for room in the socket's send buffer. The
// first ESP on an SA the control goroutine asked about (R2-SENT, a rekey)
// is reported once through a "poke": a bit in the peer's atomic word and a
// wake-up channel; so are "start a base exchange" (a write found no SA),
// "rekey" (Outbound.NeedsRekey) and "look at the path" (the association is
// in use again, its ESP came from another address, or ICE nominated a
// pair: the session's goroutine pokes too, path.go).
//
// The data path takes no lock per packet: the SPI
// table is sharded copy-on-write maps behind atomic pointers, a peer's
// outbound SA and locator are atomic pointers, the port table is a
// copy-on-write map, and counters are atomics. Writers that find no
// outbound SA take the peer's mutex to queue; the control goroutine
// flushes that queue under the same mutex before it publishes the SA, so
// queued datagrams leave first and in order. Writers seal on their own
// goroutine; a packet that comes alone is written at once by its writer,
// packets in a burst go through the bounded transmit queue to the sender,
// which writes them in batches (sendmmsg, UDP GSO for runs to one peer):
// sealing and the system calls then run on two cores (tx.go). A batch of
// txBulkBatch packets marks a bulk transfer, whose packets all take the
// queue for the next millisecond, so that each burst of it leaves in one
// batch (Stats.IO counts inline and queued packets and the batches). The read
// loop reads in batches too (recvmmsg, UDP GRO), through internal/udpbatch.
// Buffers come from two pools (2 KiB and 64 KiB); a received datagram is
// decrypted straight into a pooled buffer that the inbox hands to the
// reader, which copies it out and returns it. Sending and receiving an ESP
// datagram allocate nothing, end to end over real sockets included
// (alloc_test.go).
//
// # Relays and NAT traversal
//
// A node with Config.Relays registers with them (relayclient.go, RFC 8003,
// RFC 5770 §4.1), keeps its registrations and NAT mappings alive, and
// reaches HITs without a locator through them, with RELAY_TO and
// RELAY_HMAC (RFC 5770 §4.5, §4.10). The relay server itself is package
// relay, behind Config.Forwarder: a plain node has no relay-server code on
// its path. A relayed association's ESP starts on the relay and moves to
// the pair ICE nominates (path.go, nat/), back to the relay when that
// pair goes dark and to the pair again when it works: the relay and the
// pair are locators of the association's locator.Set, whose decisions
// locators.go carries out, as for direct associations.
// opportunistic.go runs base exchanges with a host known only by its
// address (a relay configured without its HIT).
//
// # Rules it follows
//
//   - Authorize is checked when the peer's identity is authenticated (I2,
//     R1) and before anything is sent to it; refused peers never get an
//     association, so none of their data reaches an InnerConn.
//   - The source of an authenticated I2 becomes the peer's locator when
//     none is known (RFC 7401 §6.9); ESP from elsewhere does not move it
//     (mobility, RFC 8046, needs address verification first).
//   - RFC 7402 §6.10: after a rekey the side that finishes first keeps
//     sending on the old SA until the peer's data arrives on the new
//     inbound SA (or a grace period passes), because the peer installs its
//     new inbound SA only when our ACK reaches it. A new rekey of the
//     peer's is proof too (RFC 7402 §6.8: no new UPDATE while one is
//     outstanding), and none of ours starts while such a switch waits.
//     The previous inbound SA is kept for three graces (the peer's grace
//     and the path's delay; sas.go prevLife), or until the next rekey,
//     and then, retired, twice the grace longer for packets still in
//     flight; not longer, or what an attacker held back of the peer's last
//     packets on it would be taken as new however late it came. A rekey
//     the data path asks for while another UPDATE of ours is outstanding
//     is owed, and starts once that UPDATE is answered.
//   - Inbound SPIs are random, above 255 (RFC 4303 §2.1) and unique on the
//     node.
//
// # What it must not do
//
// No protocol rules of its own beyond the glue above: packet formats,
// cryptography and state transitions belong to handshake/ and esp/, which
// it drives and never bypasses; STUN encoding belongs to pion/stun. Of
// STUN it handles Binding Requests (Config.STUNServer), the answers to its
// own STUNBinding, and hands ICE checks to nat/; the rest is counted and
// dropped. It chooses no path of its own: where an association's packets
// go is its locator Set's decision (package locator), which it carries
// out. It keeps no state for a peer that has not completed a puzzle and
// signature check.
package overlay
