// Package autoban bans, for a while, the sources of repeated failed logins,
// the way Mumble's autoban does: a source (an IPv4 address, or an IPv6 /64)
// with Attempts failed logins within Window is refused for Time. Bans are
// by source, never by account, so an attacker cannot lock a user out; they
// live in memory and a restart clears them.
//
// A [Bans] is consulted twice: by the fronts before any costly work (it is
// a transport.Gate: a legacy connection is closed right after accept, a
// QUIC connection attempt is refused before its handshake), and by the core
// before a password check, which also reports each failed login to it.
package autoban

import (
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config tunes a Bans. Zero durations mean the defaults, which are
// Mumble's.
type Config struct {
	// Attempts is how many failed logins within Window ban a source; 0
	// turns autoban off (Allow always says yes).
	Attempts int
	// Window is the time in which Attempts failures ban. Default 2 min.
	Window time.Duration
	// Time is how long a ban lasts. Default 5 min.
	Time time.Duration
	// Exempt sources are never counted or banned (a monitoring host, an
	// office's NAT).
	Exempt []netip.Prefix
	// MaxSources caps the sources with failures remembered at once; a new
	// source failing beyond it is not counted until old records expire (a
	// bound on memory: a few hundred bytes each). Default 65536.
	MaxSources int
}

// Defaults, Mumble's.
const (
	DefaultAttempts   = 10
	DefaultWindow     = 2 * time.Minute
	DefaultTime       = 5 * time.Minute
	DefaultMaxSources = 65536
)

func (c *Config) setDefaults() {
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.Time <= 0 {
		c.Time = DefaultTime
	}
	if c.MaxSources <= 0 {
		c.MaxSources = DefaultMaxSources
	}
	if c.Attempts < 0 {
		c.Attempts = 0
	}
}

// Bans tracks failed logins by source and the bans they earn. Its methods
// are safe for concurrent use and never block on I/O: the log lines are
// written after its lock is released.
type Bans struct {
	cfg   Config
	log   *slog.Logger
	start time.Time // origin of the offsets in record.fails

	bans atomic.Int64 // bans imposed since start

	mu        sync.Mutex
	sources   map[netip.Prefix]*record // sources with recent failures or a ban
	lastSweep time.Duration            // since start
}

// record is one source's recent failures, or its ban.
type record struct {
	fails []time.Duration // ring of the last failures' times since Bans.start; cap Attempts
	next  int             // index in fails of the oldest once the ring is full
	until time.Duration   // banned until this time since Bans.start; 0: not banned
}

// New returns a Bans with cfg that logs bans to log.
func New(cfg Config, log *slog.Logger) *Bans {
	cfg.setDefaults()
	cfg.Exempt = slices.Clone(cfg.Exempt)
	return &Bans{cfg: cfg, log: log, start: time.Now(), sources: make(map[netip.Prefix]*record)}
}

// Enabled reports whether autoban is on (Attempts > 0).
func (b *Bans) Enabled() bool { return b.cfg.Attempts > 0 }

// Source is the unit autoban and the login queue count by: the address
// itself for IPv4 (an IPv4-mapped IPv6 address counts as IPv4), its /64 for
// IPv6, since one IPv6 host usually has a whole /64. The zero Addr (an
// unknown peer) is a source of its own.
func Source(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	if !addr.IsValid() {
		return netip.Prefix{}
	}
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.WithZone("").Prefix(bits) // cannot fail: bits fits the family
	return p
}

// Allow reports whether a connection or login from addr may go on: false
// while its source is banned. It implements transport.Gate. Allow is cheap
// (one map lookup under a lock) and never blocks.
func (b *Bans) Allow(addr netip.Addr) bool {
	if !b.Enabled() {
		return true
	}
	key := Source(addr)
	now := time.Since(b.start)
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.sources[key]
	if r == nil || r.until == 0 {
		return true
	}
	if now < r.until {
		return false
	}
	delete(b.sources, key) // the ban is over: a fresh start
	return true
}

// Failed records a failed login from addr: bad credentials, an unknown
// user or a malformed login. The failure that makes Attempts within Window
// bans the source for Time and logs one line saying so. Failures from an
// exempt or an already banned source are ignored.
func (b *Bans) Failed(addr netip.Addr) {
	if !b.Enabled() || b.exempt(addr) {
		return
	}
	key := Source(addr)
	now := time.Since(b.start)
	b.mu.Lock()
	banned := b.failedLocked(key, now)
	b.mu.Unlock()
	if banned {
		b.bans.Add(1)
		b.log.Warn("source banned", "peer", addr.Unmap().String(), "tag", "login", "dir", "system",
			"source", key.String(), "failures", b.cfg.Attempts, "within", b.cfg.Window, "for", b.cfg.Time)
	}
}

// failedLocked counts a failure of key at now and reports whether it bans.
func (b *Bans) failedLocked(key netip.Prefix, now time.Duration) (banned bool) {
	if now-b.lastSweep >= b.cfg.Window {
		b.sweepLocked(now)
	}
	r := b.sources[key]
	switch {
	case r != nil && r.until != 0 && now < r.until:
		return false // banned already; its logins are refused before any check
	case r != nil && r.until != 0:
		*r = record{} // the ban is over: a fresh start
	case r == nil:
		if len(b.sources) >= b.cfg.MaxSources {
			return false
		}
		r = &record{}
		b.sources[key] = r
	}
	if len(r.fails) < b.cfg.Attempts {
		r.fails = append(r.fails, now)
	} else {
		r.fails[r.next] = now
		r.next = (r.next + 1) % len(r.fails)
	}
	oldest := r.fails[r.next%len(r.fails)]
	if len(r.fails) < b.cfg.Attempts || now-oldest >= b.cfg.Window {
		return false
	}
	*r = record{until: now + b.cfg.Time}
	return true
}

// sweepLocked forgets sources whose ban is over or whose last failure is
// older than Window. It runs at most once per Window, so its cost (one pass
// over at most MaxSources records) is spread thin.
func (b *Bans) sweepLocked(now time.Duration) {
	b.lastSweep = now
	for key, r := range b.sources {
		switch {
		case r.until != 0:
			if now >= r.until {
				delete(b.sources, key)
			}
		case len(r.fails) == 0 || now-r.newest() >= b.cfg.Window:
			delete(b.sources, key)
		}
	}
}

// newest is the time of r's latest failure; r has at least one.
func (r *record) newest() time.Duration {
	return r.fails[(r.next+len(r.fails)-1)%len(r.fails)]
}

// exempt reports whether addr is in an exempt prefix.
func (b *Bans) exempt(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range b.cfg.Exempt {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Stats are a Bans's counters, for metrics.
type Stats struct {
	Active  int   // sources banned now
	Bans    int64 // bans imposed since start
	Tracked int   // sources with failures or a ban remembered
}

// Stats returns a snapshot of b's counters. It walks the records, so it
// costs one pass over at most MaxSources of them; a scrape can afford it.
func (b *Bans) Stats() Stats {
	now := time.Since(b.start)
	b.mu.Lock()
	defer b.mu.Unlock()
	st := Stats{Bans: b.bans.Load(), Tracked: len(b.sources)}
	for _, r := range b.sources {
		if r.until != 0 && now < r.until {
			st.Active++
		}
	}
	return st
}
