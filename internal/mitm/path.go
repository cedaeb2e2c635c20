package mitm

import "fmt"

// Path control: a path that goes dark, both ways or one way, for the
// mobility and failover tests. It sits in front of the hook: while a
// direction is down, what the proxy receives going that way is dropped
// before the hook is asked (the hook does not see it), recorded with
// ActionDrop and counted in Counts.Dropped; the hook set with SetHook stays
// and sees the datagrams again once the direction is up. Inject, InjectFrom
// and Release are the test's own doing and are not stopped.

// Blackhole takes both directions down (on) or up (off), as a path that
// went dark and came back.
func (p *Proxy) Blackhole(on bool) {
	p.mu.Lock()
	p.blocked = [2]bool{on, on}
	p.mu.Unlock()
}

// DropDirection takes one direction, ToTarget or ToClient, down (on) or up
// (off), leaving the other as it is: a one-way path. It panics on another
// Direction.
func (p *Proxy) DropDirection(dir Direction, on bool) {
	if dir > ToClient {
		panic(fmt.Sprintf("mitm: DropDirection(%v)", dir))
	}
	p.mu.Lock()
	p.blocked[dir] = on
	p.mu.Unlock()
}

// Down reports whether dir is down (Blackhole, DropDirection).
func (p *Proxy) Down(dir Direction) bool {
	if dir > ToClient {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blocked[dir]
}
