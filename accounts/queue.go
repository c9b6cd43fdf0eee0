package accounts

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// Limits bound the queue of password checks that wait for a check slot,
// in each lane. Zero fields mean the defaults.
type Limits struct {
	// Queue is how many checks may wait in all, however costly. Beyond
	// it a check still waits if the wait it can expect, (waiting+1) ×
	// the lane's average check time ÷ its slots, is at most Wait/2, up to
	// a hard cap of 8 × Queue waiting (each waiter holds memory and a
	// connection); otherwise it is refused at once. Until a check of the
	// lane has finished there is no average, and Queue is a hard cap.
	// Default 256.
	Queue int
	// PerSource is how many checks may wait from one source (an IPv4
	// address or an IPv6 /64, as autoban counts); a login beyond it is
	// refused at once, however short the expected wait. Default 4.
	PerSource int
	// Wait bounds a check's wait for a slot; a login not checked by then is
	// refused instead of hanging. Default 10 s.
	Wait time.Duration
}

// Default Limits.
const (
	DefaultQueue     = 256
	DefaultPerSource = 4
	DefaultWait      = 10 * time.Second
)

func (l *Limits) setDefaults() {
	if l.Queue <= 0 {
		l.Queue = DefaultQueue
	}
	if l.PerSource <= 0 {
		l.PerSource = DefaultPerSource
	}
	if l.Wait <= 0 {
		l.Wait = DefaultWait
	}
}

// ThrottledError is returned by Store.Authenticate for a login whose
// password was not checked for load: its source had PerSource checks
// waiting, the queue was full (see Limits.Queue), or no slot came within
// Wait. Its Throttled method lets callers tell it from bad credentials
// without importing this package.
type ThrottledError struct{ Why string }

func (e *ThrottledError) Error() string   { return "authenticate: throttled: " + e.Why }
func (e *ThrottledError) Throttled() bool { return true }

// Refusals, as ThrottledError.Why says them.
const (
	whySource = "too many checks waiting from this source"
	whyQueue  = "check queue full"
	whyWait   = "no check slot in time"
)

// scheduler hands out check slots fairly across sources: when a slot comes
// free it goes to the first waiting check of the source with the fewest
// checks pending (waiting or running), and among those to the source
// served least recently (a source never served, or not for a long time,
// first; then in order of arrival). So a source that floods the queue
// goes after one that asks for a single check, and a source with checks
// waiting delays another source's first check by at most about one check
// beyond those already running: a flood from a few addresses costs a
// legitimate user about one check, not the flood's length. Within a
// source, checks run in arrival order. A source with several checks
// pending can wait long while many single-check sources arrive; Wait
// bounds that.
//
// The queue's cap is the wait a newcomer can expect, not only a count
// (see Limits.Queue): the scheduler keeps a moving average of how long a
// check holds its slot (observeLocked), and beyond Limits.Queue waiting a
// check is refused only if, with it, the checks waiting would keep every
// slot busy for more than Limits.Wait/2, or if queueCeiling × Queue wait
// (queueFullLocked). So a burst of cheap checks may wait while they can
// be served in time, and costly ones are refused at Queue as before.
// Below Queue a check always waits, even when that estimate exceeds
// Limits.Wait: it counts every waiting check as ahead of the newcomer,
// but the fair order serves a source with nothing pending after about one
// check.
type scheduler struct {
	mu       sync.Mutex
	limits   Limits
	slots    int                           // checks that may run at once (but see widen)
	wide     int                           // checks that may run at once while widen() is true
	widen    func() bool                   // nil: never; see widenWhile
	inUse    int                           // checks running
	waiting  map[netip.Prefix]*sourceQueue // sources with checks waiting
	total    int                           // checks waiting, over all sources
	served   map[netip.Prefix]uint64       // each source's serial of its last check started
	running  map[netip.Prefix]int          // checks running, by source
	serial   uint64                        // checks started
	arrivals uint64                        // sources that started waiting, for ties
	avg      time.Duration                 // moving average of a check's time in its slot; see observeLocked
	timed    bool                          // avg holds a check's time: one has finished
}

// sourceQueue is one source's waiting checks, oldest first.
type sourceQueue struct {
	key     netip.Prefix
	arrival uint64 // scheduler.arrivals when the source started waiting
	waiters []*waiter
}

// waiter is one check waiting for a slot.
type waiter struct {
	ready     chan struct{} // closed when the slot is granted
	granted   bool          // guarded by scheduler.mu
	grantedAt time.Time     // set with granted, before ready is closed
}

// forgetAfter is how many checks after its last one a source's serial is
// forgotten; it then ranks like a new source. It bounds served's size
// (entries are added only as checks start).
const forgetAfter = 4096

func newScheduler(slots int) *scheduler {
	s := &scheduler{
		slots:   slots,
		waiting: make(map[netip.Prefix]*sourceQueue),
		served:  make(map[netip.Prefix]uint64),
		running: make(map[netip.Prefix]int),
	}
	s.limits.setDefaults()
	return s
}

func (s *scheduler) setLimits(l Limits) {
	l.setDefaults()
	s.mu.Lock()
	s.limits = l
	s.mu.Unlock()
}

// acquire takes a check slot for a check from the source key
// (autoban.Source of the address). It returns at once with a
// *ThrottledError when the source or the queue is at its cap (see
// queueFullLocked); otherwise it waits until a slot is granted, ctx ends
// (ctx.Err()) or Limits.Wait passes (a *ThrottledError). After a nil
// error the caller must call release(key, granted) with the time acquire
// returned: when the slot was granted.
func (s *scheduler) acquire(ctx context.Context, key netip.Prefix) (granted time.Time, err error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	s.mu.Lock()
	if s.total == 0 && s.inUse < s.limitLocked() {
		s.inUse++
		s.startLocked(key)
		s.mu.Unlock()
		return time.Now(), nil
	}
	q := s.waiting[key]
	switch {
	case q != nil && len(q.waiters) >= s.limits.PerSource:
		s.mu.Unlock()
		return time.Time{}, &ThrottledError{whySource}
	case s.queueFullLocked():
		s.mu.Unlock()
		return time.Time{}, &ThrottledError{whyQueue}
	}
	if q == nil {
		s.arrivals++
		q = &sourceQueue{key: key, arrival: s.arrivals}
		s.waiting[key] = q
	}
	w := &waiter{ready: make(chan struct{})}
	q.waiters = append(q.waiters, w)
	s.total++
	s.grantLocked() // the limit may have widened since the last check ended
	wait := s.limits.Wait
	s.mu.Unlock()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-w.ready:
		return w.grantedAt, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = &ThrottledError{whyWait}
	}
	s.mu.Lock()
	if w.granted { // granted as we gave up: pass the slot on, no check timed
		s.releaseLocked(key)
	} else {
		s.removeLocked(q, w)
	}
	s.mu.Unlock()
	return time.Time{}, err
}

// queueCeiling is how many times Limits.Queue checks may wait at the
// most, however short the checks: a bound on memory.
const queueCeiling = 8

// queueFullLocked reports whether a check that would wait must be refused
// for the queue's length: Limits.Queue checks wait already, and either no
// check has finished yet (no average), queueCeiling × Queue wait, or the
// wait the check can expect is above half of Limits.Wait.
func (s *scheduler) queueFullLocked() bool {
	switch {
	case s.total < s.limits.Queue:
		return false
	case !s.timed, s.total >= queueCeiling*s.limits.Queue:
		return true
	}
	return s.expectedWaitLocked() > s.limits.Wait/2
}

// expectedWaitLocked returns the wait a check that joins the queue now can
// expect: itself and the checks waiting, each holding one of the slots for
// the average check's time.
func (s *scheduler) expectedWaitLocked() time.Duration {
	return time.Duration(s.total+1) * s.avg / time.Duration(s.limitLocked())
}

// release gives back a slot that acquire took for key at granted, and
// counts the time since then in the lane's average check time.
func (s *scheduler) release(key netip.Prefix, granted time.Time) {
	held := time.Since(granted)
	s.mu.Lock()
	s.observeLocked(held)
	s.releaseLocked(key)
	s.mu.Unlock()
}

// avgWeight is the weight of the newest check in the moving average:
// 1/avgWeight.
const avgWeight = 8

// outlierSlack is what a check may take beyond twice the average before
// observeLocked counts it as taking just that.
const outlierSlack = time.Millisecond

// observeLocked counts a check that held its slot for held in the moving
// average of checks (an exponentially weighted one, the newest check
// weighing 1/8); the first check seeds it. A check counts as taking at
// most twice the average plus outlierSlack: on saturated cores a granted
// check can wait a long time to be scheduled, and one such stall of
// 300 ms would otherwise lift an average of 50 µs checks to 40 ms at
// once, and refuse a storm of cheap logins that the lane serves at
// hundreds per second (seen in the reconnect storm, BENCHMARKS.md). A
// lasting slowdown still lifts the average, by up to an eighth per check.
func (s *scheduler) observeLocked(held time.Duration) {
	if !s.timed {
		s.avg, s.timed = held, true
		return
	}
	held = min(held, 2*s.avg+outlierSlack)
	s.avg += (held - s.avg) / avgWeight
}

// releaseLocked ends a check of key and grants the freed slot to the next
// checks, as many as the limit lets run now.
func (s *scheduler) releaseLocked(key netip.Prefix) {
	if s.running[key]--; s.running[key] <= 0 {
		delete(s.running, key)
	}
	s.inUse--
	s.grantLocked()
}

// widenWhile lets n checks run at once (if more than the slots) while
// widen() is true: costly checks in the idle-priority worker, while calls
// are in progress (Store.SetWorker). widen must not block; it is called
// with mu held, when a check arrives or ends.
func (s *scheduler) widenWhile(widen func() bool, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.widen, s.wide = widen, n
	s.grantLocked()
}

// limitLocked is how many checks may run at once now.
func (s *scheduler) limitLocked() int {
	if s.widen != nil && s.wide > s.slots && s.widen() {
		return s.wide
	}
	return s.slots
}

// grantLocked grants slots to the next waiting checks while fewer than
// the limit run.
func (s *scheduler) grantLocked() {
	for s.inUse < s.limitLocked() {
		q := s.nextLocked()
		if q == nil {
			return
		}
		w := q.waiters[0]
		q.waiters[0] = nil
		q.waiters = q.waiters[1:]
		s.total--
		if len(q.waiters) == 0 {
			delete(s.waiting, q.key)
		}
		w.granted, w.grantedAt = true, time.Now()
		close(w.ready)
		s.inUse++
		s.startLocked(q.key)
	}
}

// nextLocked returns the waiting source to serve next (see scheduler), or
// nil. A linear scan: at most queueCeiling × Limits.Queue sources wait,
// and each check costs tens of microseconds of scrypt at the least.
func (s *scheduler) nextLocked() *sourceQueue {
	var best *sourceQueue
	var bestPending int
	var bestServed uint64
	for _, q := range s.waiting {
		pending, sv := len(q.waiters)+s.running[q.key], s.served[q.key]
		switch {
		case best == nil,
			pending < bestPending,
			pending == bestPending && sv < bestServed,
			pending == bestPending && sv == bestServed && q.arrival < best.arrival:
			best, bestPending, bestServed = q, pending, sv
		}
	}
	return best
}

// startLocked records that a check of key starts now.
func (s *scheduler) startLocked(key netip.Prefix) {
	s.running[key]++
	s.serial++
	s.served[key] = s.serial
	if s.serial%forgetAfter == 0 {
		for k, sv := range s.served {
			if s.serial-sv >= forgetAfter {
				delete(s.served, k)
			}
		}
	}
}

// removeLocked takes w, which gave up, out of q.
func (s *scheduler) removeLocked(q *sourceQueue, w *waiter) {
	for i, x := range q.waiters {
		if x == w {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			s.total--
			break
		}
	}
	if len(q.waiters) == 0 && s.waiting[q.key] == q {
		delete(s.waiting, q.key)
	}
}

// stats returns the slots in use and the checks waiting.
func (s *scheduler) stats() (inFlight, waiting, sources int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inUse, s.total, len(s.waiting)
}
