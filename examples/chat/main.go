// Command chat is a terminal chat between peers named by their Host
// Identity Tags (HITs), over hipnet: every line typed is sent to every
// peer, and every line a peer sends is printed with its name.
//
//	chat -identity me.key -relay HIT@relay.example:10500 -peer HIT
//	chat -identity me.key -peer HIT@192.0.2.7:10500 -contacts friends.txt
//
// It prints "HIT <own HIT>" first (tell your peers), then one line per
// message received, "<name>: <text>", where the name is the sender's
// petname from the contacts file or else its HIT. Notices (a peer joined,
// left, cannot be reached) go to standard error, so standard output can be
// read by a program. Typed lines starting with '/' are commands: /peers
// lists the node's associations ("peer HIT path locator state [name]") and
// relays ("relay HIT address registered|unregistered address-seen"), /quit
// leaves, /help lists them; "//text" sends "/text".
//
// # Who may talk
//
// Only the peers named by -peer and in the contacts file are authorized:
// the node's hipnet.Config.Authorize admits exactly their HITs (and the
// relays'), so anyone else is refused during the HIP base exchange, before
// any of their data reaches the chat, and a stream from a relay's HIT is
// closed unread. A peer is named by a HIT, or by a petname of the contacts
// file (lines "petname HIT", '#' starts a comment). Relays must therefore
// be given with their HIT, "HIT@host:port": an opportunistic relay
// ("host:port") answers with a HIT nobody authorized.
//
// # Connections
//
// Each peer of -peer is dialled by HIT, a stream to [HIT]:7000 (-port),
// kept up and dialled again with exponential backoff (250 ms to 30 s) when
// it breaks; with "HIT@host:port" its locator is known, with HIT alone the
// node finds it through its relays (-relay, hipnet.Config.Relays), which
// works behind NATs. Every node also listens on the same port, so a peer
// of the contacts file may join by dialling in. Messages are lines (at
// most 4096 bytes; a longer one is cut) sent on one stream per peer: the
// one this side dialled while it is up, else the latest the peer dialled;
// every stream is read. Lines typed while a -peer peer is away wait for it
// (up to 1000); a contact who dialled in gets the lines typed while it is
// connected. Delivery is best effort: a line on a stream that breaks
// before the peer reads it can be lost.
//
// # Leaving
//
// At the end of standard input (or /quit) chat waits up to -linger for the
// lines still queued to be written, ends its side of every stream and
// waits, within the same bound, for each peer to end its side too (so the
// peer has read everything), then closes the node. It exits with an error
// if some line could not be delivered in time. SIGINT or SIGTERM closes
// at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"hipnet.dev/hipnet"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2) // already explained on standard error
	default:
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

// Defaults of the flags.
const (
	defaultPort   = 7000
	defaultListen = ":10500"
	defaultLinger = 10 * time.Second
)

// errUsage marks a command line that was refused; the reason has been
// printed on standard error.
var errUsage = errors.New("usage")

// options are what tests set that has no flag.
type options struct {
	// packetConn, if set, is the node's socket instead of one opened on
	// -listen (hipnet.Config.PacketConn): tests hand in a socket from a
	// network namespace or on loopback. The node closes it.
	packetConn net.PacketConn
}

// run is the whole program: it parses args, chats over stdin and stdout
// until stdin ends, /quit or ctx is done, and returns when every goroutine
// it started has returned (except a read of stdin that cannot be
// interrupted; see readInput).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runWith(ctx, options{}, args, stdin, stdout, stderr)
}

func runWith(ctx context.Context, opt options, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if opt.packetConn != nil {
		// The node owns the socket once it has started; until then, run.
		defer func() {
			if opt.packetConn != nil {
				opt.packetConn.Close()
			}
		}()
	}
	f, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	book := &contacts{}
	if f.contacts != "" {
		if book, err = readContacts(f.contacts); err != nil {
			return err
		}
	}
	peers := map[hipnet.HIT][]netip.AddrPort{}
	for _, p := range f.peers {
		hit, addr, err := parsePeer(p, book)
		if err != nil {
			return usage(stderr, "-peer %q: %v", p, err)
		}
		peers[hit] = append(peers[hit], addr...)
	}
	relays := map[hipnet.HIT]bool{}
	for _, r := range f.relays {
		ra, err := hipnet.ParseRelay(r)
		if err != nil {
			return usage(stderr, "-relay %q: %v", r, err)
		}
		if ra.HIT.IsZero() {
			return usage(stderr, "-relay %q: give the relay's HIT, HIT@host:port (only known HITs are authorized)", r)
		}
		relays[ra.HIT] = true
	}

	id, err := hipnet.LoadOrCreateIdentity(f.identity)
	if err != nil {
		return err
	}
	self := id.HIT()
	if _, ok := peers[self]; ok {
		return usage(stderr, "-peer %v is this node's own HIT", self)
	}
	allowed := map[hipnet.HIT]bool{}
	for h := range peers {
		allowed[h] = true
	}
	for _, h := range book.hits() {
		if h != self {
			allowed[h] = true
		}
	}
	if len(allowed) == 0 {
		fmt.Fprintf(stdout, "HIT %v\n", self)
		return usage(stderr, "nobody to chat with: give -peer or -contacts (and tell your peers the HIT above)")
	}
	for h := range relays {
		allowed[h] = true // for the HIP association; the chat refuses their streams
	}

	cfg := hipnet.Config{
		Identity:   id,
		ListenAddr: f.listen,
		Peers:      peers,
		Relays:     f.relays,
		PacketConn: opt.packetConn,
		Authorize:  func(h hipnet.HIT) bool { return allowed[h] },
	}
	if f.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	node, err := hipnet.NewNode(cfg)
	if err != nil {
		return err
	}
	opt.packetConn = nil // the node's now
	fmt.Fprintf(stdout, "HIT %v\n", self)

	c, err := newChat(node, chatConfig{
		port:   f.port,
		book:   book,
		peers:  peers,
		relays: relays,
		linger: f.linger,
		out:    &console{out: stdout, err: stderr},
	})
	if err != nil {
		node.Close()
		return err
	}
	return c.run(ctx, stdin)
}

// flags are the parsed command line.
type flags struct {
	identity string
	listen   string
	port     int
	peers    []string
	relays   []string
	contacts string
	linger   time.Duration
	verbose  bool
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.identity, "identity", "chat.key", "host identity `file` (PEM; created, mode 0600, if missing)")
	fs.StringVar(&f.listen, "listen", defaultListen, "UDP `address` of the node's socket (HIP and ESP)")
	fs.IntVar(&f.port, "port", defaultPort, "stream `port` of the chat, dialled on peers and listened on here")
	fs.Func("peer", "a peer to chat with, kept connected: `HIT`, petname, or either with @host:port (repeatable)", func(s string) error {
		f.peers = append(f.peers, s)
		return nil
	})
	fs.Func("relay", "a relay to register with and reach peers through, `HIT@host:port` (repeatable)", func(s string) error {
		f.relays = append(f.relays, s)
		return nil
	})
	fs.StringVar(&f.contacts, "contacts", "", "contacts `file`: lines \"petname HIT\", '#' comments; they may chat too")
	fs.DurationVar(&f.linger, "linger", defaultLinger, "at the end of input, how long to wait for queued lines to reach peers")
	fs.BoolVar(&f.verbose, "v", false, "log hipnet's debug messages on standard error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: chat [flags]

  chat -identity me.key -relay HIT@relay.example:10500 -peer HIT
  chat -identity me.key -peer HIT@192.0.2.7:10500 -contacts friends.txt

Lines read from standard input go to every peer; lines from peers are
printed as "<petname or HIT>: text". Only the peers of -peer and of the
contacts file are authorized. Commands: /peers, /quit, /help.

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", errUsage, err) // the flag package printed it
	}
	if fs.NArg() > 0 {
		return nil, usage(stderr, "unexpected argument %q", fs.Arg(0))
	}
	if f.port < 1 || f.port > 0xFFFF || f.port == hipnet.StreamPort {
		return nil, usage(stderr, "-port %d: want 1 to %d", f.port, hipnet.StreamPort-1)
	}
	if f.linger < 0 {
		return nil, usage(stderr, "-linger %v: must not be negative", f.linger)
	}
	return f, nil
}

// usage prints a command-line error and returns it marked with errUsage.
func usage(stderr io.Writer, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	fmt.Fprintf(stderr, "chat: %v (chat -h for help)\n", err)
	return fmt.Errorf("%w: %w", errUsage, err)
}

// parsePeer parses a -peer: a HIT or a petname of book, optionally
// followed by "@host:port". A host name is resolved now.
func parsePeer(s string, book *contacts) (hipnet.HIT, []netip.AddrPort, error) {
	who, where, hasAddr := strings.Cut(strings.TrimSpace(s), "@")
	var hit hipnet.HIT
	if strings.Contains(who, ":") {
		var err error
		if hit, err = hipnet.ParseHIT(who); err != nil {
			return hit, nil, err
		}
	} else if h, ok := book.hit(who); ok {
		hit = h
	} else {
		return hit, nil, fmt.Errorf("%q is neither a HIT nor a petname of the contacts file", who)
	}
	if !hasAddr {
		return hit, nil, nil
	}
	ap, err := netip.ParseAddrPort(where)
	if err != nil {
		ua, rerr := net.ResolveUDPAddr("udp", where)
		if rerr != nil {
			return hit, nil, rerr
		}
		ap = ua.AddrPort()
	}
	return hit, []netip.AddrPort{netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
}
