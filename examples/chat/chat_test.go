package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listenLoopback opens a node socket on an ephemeral loopback port.
func listenLoopback(t *testing.T) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// TestLoopback: two chats on loopback that know each other's locator
// exchange lines both ways, alice shows bob by his petname from her
// contacts file and bob shows alice by her HIT; a third peer that neither
// lists is refused by alice's node, so its line never reaches her; the
// last line typed before the end of input still arrives; both leave
// cleanly and leave no goroutine behind.
func TestLoopback(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	aliceKey, aliceHIT := newIdentity(t, dir, "alice")
	bobKey, bobHIT := newIdentity(t, dir, "bob")
	malloryKey, malloryHIT := newIdentity(t, dir, "mallory")
	book := filepath.Join(dir, "contacts")
	if err := os.WriteFile(book, []byte("# alice's friends\nbob "+bobHIT.String()+"  # from work\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	apc, bpc := listenLoopback(t), listenLoopback(t)
	aliceAddr, bobAddr := apc.LocalAddr().String(), bpc.LocalAddr().String()

	alice := start(t, ctx, "alice", aliceHIT, options{packetConn: apc},
		"-identity", aliceKey, "-contacts", book, "-peer", "bob@"+bobAddr)
	bob := start(t, ctx, "bob", bobHIT, options{packetConn: bpc},
		"-identity", bobKey, "-peer", aliceHIT.String()+"@"+aliceAddr)

	alice.send("hello bob")
	bob.expect(aliceHIT.String() + ": hello bob")
	bob.send("hi alice, 🙂")
	alice.expect("bob: hi alice, 🙂")
	bob.send("//not a command")
	alice.expect("bob: /not a command")
	bob.send("tab\there, escape \x1b[31m, override \u202e")
	alice.expect("bob: tab here, escape \uFFFD[31m, override \uFFFD")

	// mallory knows alice's HIT and address, and is listed by nobody.
	mallory := start(t, ctx, "mallory", malloryHIT, options{},
		"-identity", malloryKey, "-listen", "127.0.0.1:0", "-peer", aliceHIT.String()+"@"+aliceAddr, "-linger", "500ms")
	mallory.send("let me in")
	mallory.waitStderr("cannot reach " + aliceHIT.String())
	mallory.waitStderr("BLOCKED_BY_POLICY") // RFC 7401 §5.2.19: alice refused it, signed
	if err := mallory.quit(); err == nil || !strings.Contains(err.Error(), "not delivered to "+aliceHIT.String()) {
		t.Fatalf("mallory's run: %v, want lines not delivered; stderr:\n%s", err, mallory.stderr)
	}
	t.Logf("mallory's stderr:\n%s", mallory.stderr)

	// alice's associations: bob, and never mallory. /help comes after
	// the /peers lines and ends them.
	alice.send("/peers")
	alice.send("/help")
	peers := alice.expect("commands:", "let me in")
	if len(peers) != 1 || !strings.HasPrefix(peers[0], "peer "+bobHIT.String()+" direct "+bobAddr+" ESTABLISHED bob") {
		t.Fatalf("/peers: %q", peers)
	}
	if strings.Contains(alice.stderr.String(), malloryHIT.String()) {
		t.Fatalf("alice heard of mallory:\n%s", alice.stderr)
	}

	// The last line before the end of input is delivered before alice
	// leaves; bob sees her go.
	alice.send("bye")
	if err := alice.quit(); err != nil {
		t.Fatalf("alice: %v; stderr:\n%s", err, alice.stderr)
	}
	bob.expect(aliceHIT.String()+": bye", "let me in")
	bob.waitStderr(aliceHIT.String() + " left")
	if err := bob.quit(); err != nil {
		t.Fatalf("bob: %v; stderr:\n%s", err, bob.stderr)
	}
	t.Logf("alice's stderr:\n%s", alice.stderr)
	t.Logf("bob's stderr:\n%s", bob.stderr)
	checkNoLeaks(t)
}

// TestContactJoins: a peer of the contacts file that is not dialled joins
// by dialling in, and the two chat both ways over that one stream.
func TestContactJoins(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	aliceKey, aliceHIT := newIdentity(t, dir, "alice")
	carolKey, carolHIT := newIdentity(t, dir, "carol")
	book := filepath.Join(dir, "contacts")
	os.WriteFile(book, []byte("carol "+carolHIT.String()+"\n"), 0o600)
	apc := listenLoopback(t)

	alice := start(t, ctx, "alice", aliceHIT, options{packetConn: apc}, "-identity", aliceKey, "-contacts", book)
	alice.send("anyone?") // nobody is connected: not sent
	alice.waitStderr("nobody is here")
	carol := start(t, ctx, "carol", carolHIT, options{},
		"-identity", carolKey, "-listen", "127.0.0.1:0", "-peer", aliceHIT.String()+"@"+apc.LocalAddr().String())
	alice.waitStderr("carol joined (direct)")
	carol.send("knock knock")
	alice.expect("carol: knock knock")
	alice.send("who's there")
	carol.expect(aliceHIT.String()+": who's there", "anyone?")
	if err := carol.quit(); err != nil {
		t.Fatalf("carol: %v; stderr:\n%s", err, carol.stderr)
	}
	alice.waitStderr("carol left")
	if err := alice.quit(); err != nil {
		t.Fatalf("alice: %v; stderr:\n%s", err, alice.stderr)
	}
	checkNoLeaks(t)
}

// TestPendingLinesWait: lines typed before the peer is up wait for it, and
// reach it once it starts, although the sender's input has ended.
func TestPendingLinesWait(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	aliceKey, aliceHIT := newIdentity(t, dir, "alice")
	bobKey, bobHIT := newIdentity(t, dir, "bob")
	apc, bpc := listenLoopback(t), listenLoopback(t)
	bobAddr := bpc.LocalAddr().String()
	bpc.Close() // bob is not there yet

	alice := start(t, ctx, "alice", aliceHIT, options{packetConn: apc},
		"-identity", aliceKey, "-peer", bobHIT.String()+"@"+bobAddr)
	alice.send("one")
	alice.send("two")
	alice.stdin.Close()
	time.Sleep(300 * time.Millisecond)

	bpc, err := net.ListenPacket("udp4", bobAddr)
	if err != nil {
		t.Fatal(err)
	}
	bob := start(t, ctx, "bob", bobHIT, options{packetConn: bpc},
		"-identity", bobKey, "-peer", aliceHIT.String()+"@"+apc.LocalAddr().String())
	bob.expect(aliceHIT.String() + ": one")
	bob.expect(aliceHIT.String() + ": two")
	if err := alice.wait(); err != nil {
		t.Fatalf("alice: %v; stderr:\n%s", err, alice.stderr)
	}
	if err := bob.quit(); err != nil {
		t.Fatalf("bob: %v", err)
	}
	checkNoLeaks(t)
}

// TestInterrupt: cancelling the context (SIGINT in main) ends a chat at
// once, even with lines queued for a peer that is not there, and without
// error.
func TestInterrupt(t *testing.T) {
	dir := t.TempDir()
	key, hit := newIdentity(t, dir, "alice")
	_, bobHIT := newIdentity(t, dir, "bob")
	ctx, cancel := context.WithCancel(context.Background())
	alice := start(t, ctx, "alice", hit, options{packetConn: listenLoopback(t)},
		"-identity", key, "-peer", bobHIT.String()+"@127.0.0.1:9", "-linger", "1h")
	alice.send("into the void")
	began := time.Now()
	cancel()
	if err := alice.wait(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("interrupted chat took %v to return", d)
	}
	checkNoLeaks(t)
}

// TestUsage: -h prints the flags, and bad command lines are refused
// before anything starts, with the reason.
func TestUsage(t *testing.T) {
	dir := t.TempDir()
	key, hit := newIdentity(t, dir, "me")
	book := filepath.Join(dir, "contacts")
	os.WriteFile(book, []byte("bob 2001:20::1\n"), 0o600)

	var stderr syncBuffer
	err := run(context.Background(), []string{"-h"}, strings.NewReader(""), io.Discard, &stderr)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "-peer") || !strings.Contains(stderr.String(), "usage: chat") {
		t.Fatalf("-h: %v\n%s", err, stderr.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-nope"}, "flag provided but not defined"},
		{[]string{"-identity", key, "-peer", "carol"}, `"carol" is neither a HIT nor a petname`},
		{[]string{"-identity", key, "-peer", "2001:db8::1"}, "ORCHIDv2"},
		{[]string{"-identity", key, "-peer", hit.String()}, "own HIT"},
		{[]string{"-identity", key, "-contacts", book, "-relay", "127.0.0.1:10500"}, "give the relay's HIT"},
		{[]string{"-identity", key, "-port", "0", "-contacts", book}, "-port 0"},
		{[]string{"-identity", key, "extra"}, `unexpected argument "extra"`},
		{[]string{"-identity", key}, "nobody to chat with"},
	} {
		var stderr syncBuffer
		err := run(context.Background(), tc.args, strings.NewReader(""), io.Discard, &stderr)
		if !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: %v, stderr %q; want usage error %q", tc.args, err, stderr.String(), tc.want)
		}
	}
}

// TestIdentityCreated: a missing identity file is created with mode 0600,
// and its HIT is printed first.
func TestIdentityCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.key")
	book := filepath.Join(t.TempDir(), "contacts")
	os.WriteFile(book, []byte("bob 2001:20::1\n"), 0o600)
	var out syncBuffer
	err := run(context.Background(), []string{"-identity", path, "-listen", "127.0.0.1:0", "-contacts", book},
		strings.NewReader(""), &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v %v", fi, err)
	}
	_, hit := newIdentity(t, filepath.Dir(path), "new")
	if want := fmt.Sprintf("HIT %v\n", hit); out.String() != want {
		t.Fatalf("output %q, want %q", out.String(), want)
	}
	checkNoLeaks(t)
}

// TestReconnect: when a peer goes abruptly (interrupted) and comes back
// (same identity, same address), the chat dials it again and lines flow
// as before, the ones typed while it was away included.
func TestReconnect(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	aliceKey, aliceHIT := newIdentity(t, dir, "alice")
	bobKey, bobHIT := newIdentity(t, dir, "bob")
	apc, bpc := listenLoopback(t), listenLoopback(t)
	aliceAddr, bobAddr := apc.LocalAddr().String(), bpc.LocalAddr().String()

	alice := start(t, ctx, "alice", aliceHIT, options{packetConn: apc},
		"-identity", aliceKey, "-peer", bobHIT.String()+"@"+bobAddr)
	bobArgs := []string{"-identity", bobKey, "-peer", aliceHIT.String() + "@" + aliceAddr}
	bobCtx, interrupt := context.WithCancel(ctx)
	bob := start(t, bobCtx, "bob", bobHIT, options{packetConn: bpc}, bobArgs...)
	alice.send("first")
	bob.expect(aliceHIT.String() + ": first")
	interrupt()
	if err := bob.wait(); err != nil {
		t.Fatalf("bob: %v", err)
	}
	alice.waitStderr(bobHIT.String() + " left")
	alice.send("while you were away")

	bpc, err := net.ListenPacket("udp4", bobAddr)
	if err != nil {
		t.Fatal(err)
	}
	bob = start(t, ctx, "bob again", bobHIT, options{packetConn: bpc}, bobArgs...)
	bob.expect(aliceHIT.String() + ": while you were away")
	alice.send("welcome back")
	bob.expect(aliceHIT.String() + ": welcome back")
	bob.send("thanks")
	alice.expect(bobHIT.String() + ": thanks")
	if err := bob.quit(); err != nil {
		t.Fatalf("bob: %v", err)
	}
	if err := alice.quit(); err != nil {
		t.Fatalf("alice: %v", err)
	}
	t.Logf("alice's stderr:\n%s", alice.stderr)
	checkNoLeaks(t)
}
