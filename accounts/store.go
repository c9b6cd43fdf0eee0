package accounts

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/dtcall/dtcall/accounts/autoban"
)

// ErrBadCredentials is returned by Store.Authenticate for an unknown name
// and for a wrong password alike, so that a client cannot tell which.
var ErrBadCredentials = errors.New("bad user name or password")

// Store holds the accounts of a users file and checks passwords against
// them. Checks go through one of two lanes by their cost (Params.Costly):
// costly checks (the old tool's p=16 hashes) and the rest. In each lane at
// most a fixed number of scrypt checks run at once; further checks wait in
// a queue bounded per source and in all (see Limits), served fairly across
// sources. So a cheap check never waits behind a costly one. While calls
// are in progress (SetWorker), costly checks run in a Worker process at
// the lowest CPU priority. Replace swaps in the accounts of a reloaded
// users file. All methods are safe for concurrent use.
type Store struct {
	set      atomic.Pointer[accountSet] // the accounts now; replaced whole
	lanes    [2]*scheduler              // by laneOf
	here     chan struct{}              // a token per costly check running in this process; cap maxConcurrent
	decoyKey []byte                     // picks an unknown name's decoy; random per Store
	worker   atomic.Pointer[offload]    // nil: every check runs in this process

	checks    atomic.Uint64 // checks finished, including results dropped for a done ctx
	rejected  atomic.Uint64 // Authenticate calls that returned ErrBadCredentials
	canceled  atomic.Uint64 // Authenticate calls that returned a ctx error
	throttled atomic.Uint64 // Authenticate calls that returned a *ThrottledError
	inWorker  atomic.Uint64 // checks a Worker ran
	fallbacks atomic.Uint64 // checks the Worker failed, run here instead

	// verify is Hash.Verify and costly Params.Costly; tests replace them
	// to watch checks run and to send cheap hashes to the Worker.
	verify func(h Hash, password string) bool
	costly func(Params) bool
}

// NewStore returns a Store of entries that runs at most maxConcurrent
// checks at once in each lane in this process, with the default Limits.
// maxConcurrent <= 0 means max(1, GOMAXPROCS-1), which keeps one core free
// for calls in progress however many logins of a kind arrive (costly ones
// take only idle CPU while calls are in progress, and may run more at once
// there; see SetWorker). If a name occurs
// more than once (ParseUsers never returns such entries), the first entry
// wins. NewStore copies what
// it keeps of entries.
func NewStore(entries []Entry, maxConcurrent int) *Store {
	if maxConcurrent <= 0 {
		maxConcurrent = max(1, runtime.GOMAXPROCS(0)-1)
	}
	s := &Store{
		lanes:    [2]*scheduler{newScheduler(maxConcurrent), newScheduler(maxConcurrent)},
		here:     make(chan struct{}, maxConcurrent),
		decoyKey: newDecoyKey(),
		verify:   Hash.Verify,
		costly:   Params.Costly,
	}
	s.Replace(entries)
	return s
}

// SetLimits changes the bounds of both lanes' queues for the logins that
// follow; zero fields mean the defaults.
func (s *Store) SetLimits(l Limits) {
	for _, q := range s.lanes {
		q.setLimits(l)
	}
}

// Lanes, the index into Store.lanes.
const (
	laneCheap  = 0
	laneCostly = 1
)

// laneOf returns the lane of checks of h. It depends on h's parameters
// only, so an unknown name's decoy goes where the accounts it stands for
// go.
func (s *Store) laneOf(h Hash) int {
	if s.costly(h.Params) {
		return laneCostly
	}
	return laneCheap
}

// offload is what SetWorker set.
type offload struct {
	busy   func() bool
	worker *Worker
}

// SetWorker makes costly checks that start while busy() is true run in w
// (see Worker) instead of this process; other checks, and all of them
// when w is nil, run here. busy must not block: the core's "calls in
// progress". A check w fails (its process died, or it was starved of CPU
// for WorkerConfig.Timeout) is run here instead, so the result is the
// same.
//
// While busy, the costly lane runs up to WorkerConfig.Children checks at
// once (if that is more than NewStore's maxConcurrent): at idle priority
// they take only what calls leave over, so on two cores a burst of ten
// p=16 logins is done in half the time. Otherwise it runs maxConcurrent,
// as before, and so do costly checks in this process at any time (a check
// the Worker failed, or one granted just as the calls ended, waits for
// one to end).
func (s *Store) SetWorker(busy func() bool, w *Worker) {
	if busy == nil || w == nil {
		s.lanes[laneCostly].widenWhile(nil, 0)
		s.worker.Store(nil)
		return
	}
	s.lanes[laneCostly].widenWhile(busy, w.Children())
	s.worker.Store(&offload{busy: busy, worker: w})
}

// accountSet is one generation of accounts; read-only once made.
type accountSet struct {
	users  map[string]Hash
	decoys decoySet // checked for unknown names, so they cost what known ones do
}

// Replace makes entries the accounts, at once for every later call: a
// reloaded users file. Checks already running finish against the old
// accounts. As in NewStore, the first entry of a name wins.
func (s *Store) Replace(entries []Entry) {
	set := &accountSet{users: make(map[string]Hash, len(entries))}
	kept := make([]Entry, 0, len(entries))
	for _, e := range entries {
		if _, dup := set.users[e.Name]; dup {
			continue
		}
		set.users[e.Name] = Hash{
			Params: e.Hash.Params,
			Salt:   append([]byte(nil), e.Hash.Salt...),
			Key:    append([]byte(nil), e.Hash.Key...),
		}
		kept = append(kept, e)
	}
	set.decoys = newDecoySet(kept)
	s.set.Store(set)
}

// Exists reports whether name is an account. It does not block.
func (s *Store) Exists(name string) bool {
	_, ok := s.set.Load().users[name]
	return ok
}

// Len returns the number of accounts.
func (s *Store) Len() int { return len(s.set.Load().users) }

// Authenticate checks password for the account name, for a login from
// source. It returns nil on a match and ErrBadCredentials for a wrong
// password or an unknown name. An unknown name is checked against a decoy
// whose cost is that of one of the file's accounts, the same one each time
// for a name (see decoy.go), through the same queue, so timing does not
// tell unknown names from real ones.
//
// Authenticate waits for a check slot of the hash's lane in a queue
// served fairly across sources (autoban.Source: an IPv4 address or an IPv6
// /64; see scheduler), then blocks for the check itself (about 0.8 s
// of CPU for the old tool's hashes, 0.1 s for DefaultParams). It returns a
// *ThrottledError at once when source has Limits.PerSource checks waiting
// or the lane's queue is full, and after Limits.Wait without a slot. The
// queue is full when it holds 8 × Limits.Queue, or when it holds Queue
// and the wait this login can expect there (the checks waiting and its
// own at the lane's average check time, spread over the lane's slots) is
// above Limits.Wait/2, or no check of the lane has finished yet.
// If ctx ends while waiting, it returns an error wrapping ctx.Err() at
// once. A check that has started runs to the end, but if ctx is done by
// then its result is dropped and the ctx error returned.
func (s *Store) Authenticate(ctx context.Context, source netip.Addr, name, password string) error {
	set := s.set.Load()
	h, known := set.users[name]
	if !known {
		h = set.decoys.pick(s.decoyKey, name)
	}
	key := autoban.Source(source)
	lane := s.laneOf(h)
	granted, err := s.lanes[lane].acquire(ctx, key)
	if err != nil {
		var te *ThrottledError
		if errors.As(err, &te) {
			s.throttled.Add(1)
			return err
		}
		s.canceled.Add(1)
		return fmt.Errorf("authenticate: wait for a check slot: %w", err)
	}
	ok := s.check(lane, key, granted, h, password)
	if err := ctx.Err(); err != nil {
		s.canceled.Add(1)
		return fmt.Errorf("authenticate: %w", err)
	}
	if !known || !ok {
		s.rejected.Add(1)
		return ErrBadCredentials
	}
	return nil
}

// check runs one check in a slot of lane that acquire granted for key at
// granted and gives the slot back. A costly check that starts while busy
// runs in the Worker, or here if the Worker fails it.
func (s *Store) check(lane int, key netip.Prefix, granted time.Time, h Hash, password string) bool {
	defer func() {
		s.lanes[lane].release(key, granted)
		s.checks.Add(1)
	}()
	if p := s.worker.Load(); p != nil && lane == laneCostly && p.busy() {
		ok, err := p.worker.verify(h, password)
		if err == nil {
			s.inWorker.Add(1)
			return ok
		}
		s.fallbacks.Add(1) // the Worker logged why
	}
	if lane == laneCostly {
		s.here <- struct{}{}
		defer func() { <-s.here }()
	}
	return s.verify(h, password)
}

// Stats are a Store's counters, for metrics.
type Stats struct {
	Limit     int    // most checks that run at once in each lane in this process
	InFlight  int    // checks running now
	Waiting   int    // Authenticate calls waiting for a slot
	Sources   int    // sources with calls waiting, counted once per lane
	Checks    uint64 // checks finished
	Rejected  uint64 // Authenticate calls that returned ErrBadCredentials
	Canceled  uint64 // Authenticate calls that returned a ctx error
	Throttled uint64 // Authenticate calls that returned a *ThrottledError
	InWorker  uint64 // checks a Worker ran (SetWorker)
	Fallbacks uint64 // checks a Worker failed, run in this process instead
}

// Stats returns a snapshot of s's counters. The fields are read one by one,
// so they may be mutually inconsistent by a few in-progress calls.
func (s *Store) Stats() Stats {
	st := Stats{
		Checks:    s.checks.Load(),
		Rejected:  s.rejected.Load(),
		Canceled:  s.canceled.Load(),
		Throttled: s.throttled.Load(),
		InWorker:  s.inWorker.Load(),
		Fallbacks: s.fallbacks.Load(),
	}
	st.Limit = cap(s.here)
	for _, q := range s.lanes {
		inFlight, waiting, sources := q.stats()
		st.InFlight += inFlight
		st.Waiting += waiting
		st.Sources += sources
	}
	return st
}
