package quic

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	quicgo "github.com/quic-go/quic-go"
)

// Why a connection attempt was refused before its handshake. quic-go
// answers each with CONNECTION_REFUSED; the client's dial fails with a
// *quicgo.TransportError of that code.
var (
	errBanned       = errors.New("source address refused by the gate")
	errSourceLimit  = errors.New("too many QUIC connections from this source")
	errGlobalLimit  = errors.New("too many QUIC connections")
	refusalReasons  = [...]string{"banned", "per_source", "total"}
	refusalByReason = map[error]int{errBanned: 0, errSourceLimit: 1, errGlobalLimit: 2}
)

// admission counts live QUIC connections (handshaking ones included) per
// source and in all, and refuses those over the limits. Its methods are
// safe for concurrent use; quic-go calls take from its packet loop, so
// they never block.
type admission struct {
	perSource, total int

	mu     sync.Mutex
	live   int
	bySrc  map[netip.Prefix]int
	closed int // connections closed since the last reclaim (see Server.reclaim)
	peak   int // most live connections since the last reclaim
}

func newAdmission(perSource, total int) *admission {
	return &admission{perSource: perSource, total: total, bySrc: make(map[netip.Prefix]int)}
}

// sourceOf is the unit a per-source limit counts: the IPv4 address, or the
// /64 an IPv6 address is in (one customer's network, usually).
func sourceOf(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// take admits one connection from addr, or says why not. A connection it
// admits must be given back with put once it is gone.
func (ad *admission) take(src netip.Prefix) error {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	switch {
	case ad.live >= ad.total:
		return errGlobalLimit
	case ad.bySrc[src] >= ad.perSource:
		return errSourceLimit
	}
	ad.live++
	ad.peak = max(ad.peak, ad.live)
	ad.bySrc[src]++
	return nil
}

// put gives back a connection that take admitted. It reports whether so
// many connections closed since the last reclaim that the memory they held
// is worth returning to the system now: at least reclaimAfter, and at
// least half of the most there were.
func (ad *admission) put(src netip.Prefix) (reclaim bool) {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	ad.live--
	if n := ad.bySrc[src] - 1; n > 0 {
		ad.bySrc[src] = n
	} else {
		delete(ad.bySrc, src) // the map holds live sources only
	}
	ad.closed++
	if ad.closed >= reclaimAfter && ad.live <= ad.peak/2 {
		ad.closed, ad.peak = 0, ad.live
		return true
	}
	return false
}

// count returns the live connections.
func (ad *admission) count() int {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	return ad.live
}

// reclaimAfter is how many connections must have closed (and at least half
// of all) before the front hands their memory back to the system at once.
const reclaimAfter = 512

// clientAddr is the address of a connection attempt, IPv4-mapped
// addresses unmapped.
func clientAddr(ci *quicgo.ClientInfo) netip.Addr {
	if ua, ok := ci.RemoteAddr.(*net.UDPAddr); ok {
		return ua.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
