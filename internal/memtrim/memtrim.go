// Package memtrim gives a burst's memory back to the operating system
// once the process goes quiet.
//
// The Go runtime frees heap only at collections, and starts one only as
// the heap grows. A server that has just logged in two thousand phones
// and then idles allocates nothing more, so it keeps the burst's garbage,
// the stacks its goroutines grew and the spare heap for the two minutes
// until the runtime's forced collection, and returns them to the system
// slowly after that: an idle server looks 30 % larger than it is. A
// Trimmer watches the allocation rate; once a burst has allocated Burst
// bytes since the last trim and the rate then stays under QuietRate for
// QuietFor, it runs one collection that also returns the free memory
// (debug.FreeOSMemory). A busy server never counts as quiet, so it never
// pays for a trim; a quiet one pays once per burst.
package memtrim

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// Config tunes a Trimmer; zero fields mean the defaults.
type Config struct {
	// Interval is how often the allocation counter is read. Default 1 s.
	Interval time.Duration
	// Burst is how many bytes allocated since the last trim make one
	// worth its collection. Default 32 MiB.
	Burst uint64
	// QuietRate is the allocation rate, in bytes per second, under which
	// the process counts as quiet. Default 1 MiB/s: what a few hundred
	// calls' relay allocates is well under it, a login burst well over.
	QuietRate uint64
	// QuietFor is how long the rate must stay under QuietRate before a
	// trim. Default 2 s.
	QuietFor time.Duration
}

// Defaults.
const (
	DefaultInterval  = time.Second
	DefaultBurst     = 32 << 20
	DefaultQuietRate = 1 << 20
	DefaultQuietFor  = 2 * time.Second
)

func (c *Config) setDefaults() {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.QuietRate == 0 {
		c.QuietRate = DefaultQuietRate
	}
	if c.QuietFor <= 0 {
		c.QuietFor = DefaultQuietFor
	}
}

// Trimmer decides when to trim; see the package comment.
type Trimmer struct {
	cfg    Config
	log    *slog.Logger
	trims  atomic.Uint64
	sample []metrics.Sample // owned by Run
}

// New returns a Trimmer; Run starts it.
func New(cfg Config, log *slog.Logger) *Trimmer {
	cfg.setDefaults()
	return &Trimmer{cfg: cfg, log: log, sample: []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}}
}

// Trims returns how many trims have run, for metrics.
func (t *Trimmer) Trims() uint64 { return t.trims.Load() }

// Run watches the allocation rate until ctx ends.
func (t *Trimmer) Run(ctx context.Context) {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	start := t.allocated()
	w := watch{cfg: t.cfg, last: start, lastTrim: start, lastAt: time.Now()}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if w.observe(t.allocated(), now) {
				t.trim(&w)
			}
		}
	}
}

func (t *Trimmer) trim(w *watch) {
	start := time.Now()
	debug.FreeOSMemory()
	w.trimmed(t.allocated(), time.Now())
	t.trims.Add(1)
	t.log.Debug("returned idle memory to the system", "tag", "memory", "dir", "system",
		"took", time.Since(start).Round(time.Microsecond))
}

// watch is the Trimmer's decision, apart from the runtime so that it can
// be tested with made-up counters.
type watch struct {
	cfg        Config
	last       uint64    // allocation counter at the last observation
	lastAt     time.Time // when
	lastTrim   uint64    // allocation counter after the last trim (or at the start)
	quietSince time.Time // start of the current quiet stretch; zero while busy
}

// observe records the allocation counter at now and reports whether to
// trim now.
func (w *watch) observe(total uint64, now time.Time) bool {
	elapsed := now.Sub(w.lastAt)
	rate := uint64(0)
	if elapsed > 0 {
		rate = uint64(float64(total-w.last) / elapsed.Seconds())
	}
	w.last, w.lastAt = total, now
	if rate >= w.cfg.QuietRate {
		w.quietSince = time.Time{}
		return false
	}
	if w.quietSince.IsZero() {
		w.quietSince = now
	}
	return total-w.lastTrim >= w.cfg.Burst && now.Sub(w.quietSince) >= w.cfg.QuietFor
}

// trimmed records a trim that ended at now with the counter at total (the
// collection itself allocates a little).
func (w *watch) trimmed(total uint64, now time.Time) {
	w.lastTrim, w.last, w.lastAt = total, total, now
}

// allocated returns the bytes allocated on the heap since the process
// started.
func (t *Trimmer) allocated() uint64 {
	metrics.Read(t.sample)
	return t.sample[0].Value.Uint64()
}
