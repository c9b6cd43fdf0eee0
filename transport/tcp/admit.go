package tcp

import (
	"context"
	"errors"
	"net/netip"
	"sync"
)

// Defaults of the caps on connections in the handshake phase.
const (
	// DefaultMaxHandshakesPerSource is Config.MaxHandshakesPerSource's
	// default: no phone opens more than two connections at once, and a
	// carrier NAT's users rarely shake hands at the same moment.
	DefaultMaxHandshakesPerSource = 8
	// DefaultMaxHandshakes is Config.MaxHandshakes's default.
	DefaultMaxHandshakes = 1024
)

// errEvicted ends a handshake cut to make room under the total cap.
var errEvicted = errors.New("cut to make room: too many connections shaking hands")

// ticket is one admitted connection in the handshake phase. Its context is
// the parent of the handshake's; cancelling it cuts the handshake short.
type ticket struct {
	src    netip.Addr // sourceKey of the peer
	ctx    context.Context
	cancel context.CancelCauseFunc

	// Guarded by admission.mu.
	prev, next *ticket // in admission's list, oldest first
	gone       bool    // released or evicted: no longer counted
}

// admission counts the connections in the handshake phase (accepted, TLS
// not done yet), per source and in total, on both ports together. Beyond
// the per-source cap a new connection is refused; at the total cap a new
// one is admitted and the oldest one still shaking hands is cut instead,
// so that many sources holding silent connections cannot lock everyone
// else out (with a refusal, ~100 connections a second from a few hundred
// addresses would keep the cap full and refuse every real client). Its
// methods are safe for concurrent use and do no I/O.
type admission struct {
	perSource, total int // caps, > 0

	mu         sync.Mutex
	bySource   map[netip.Addr]int
	n          int     // tickets counted
	head, tail *ticket // oldest, newest
}

func newAdmission(perSource, total int) *admission {
	if perSource <= 0 {
		perSource = DefaultMaxHandshakesPerSource
	}
	if total <= 0 {
		total = DefaultMaxHandshakes
	}
	return &admission{perSource: perSource, total: total, bySource: make(map[netip.Addr]int)}
}

// sourceKey is what the per-source cap counts: an IPv4 address, or the /64
// of an IPv6 address (one host commonly holds a whole /64).
func sourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// admit counts a new connection from src. It returns nil when src already
// has perSource connections shaking hands. When the total cap is reached it
// cuts the oldest ticket (cancels its context) and reports that with
// evicted.
func (a *admission) admit(parent context.Context, src netip.Addr) (t *ticket, evicted bool) {
	key := sourceKey(src)
	a.mu.Lock()
	if a.bySource[key] >= a.perSource {
		a.mu.Unlock()
		return nil, false
	}
	var victim *ticket
	if a.n >= a.total {
		victim = a.head
		a.removeLocked(victim)
	}
	t = &ticket{src: key}
	t.ctx, t.cancel = context.WithCancelCause(parent)
	a.bySource[key]++
	a.n++
	t.prev, a.tail = a.tail, t
	if t.prev != nil {
		t.prev.next = t
	} else {
		a.head = t
	}
	a.mu.Unlock()
	if victim != nil {
		victim.cancel(errEvicted) // no I/O: the victim's goroutine closes its conn
	}
	return t, victim != nil
}

// release uncounts t when its handshake has ended; it does nothing if t was
// evicted. It releases t's context.
func (a *admission) release(t *ticket) {
	a.mu.Lock()
	if !t.gone {
		a.removeLocked(t)
	}
	a.mu.Unlock()
	t.cancel(context.Canceled)
}

// removeLocked uncounts t and unlinks it. a.mu must be held.
func (a *admission) removeLocked(t *ticket) {
	t.gone = true
	if n := a.bySource[t.src] - 1; n > 0 {
		a.bySource[t.src] = n
	} else {
		delete(a.bySource, t.src)
	}
	a.n--
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		a.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		a.tail = t.prev
	}
	t.prev, t.next = nil, nil
}

// count returns how many connections are shaking hands.
func (a *admission) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}
