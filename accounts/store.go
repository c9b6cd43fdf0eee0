package accounts

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
)

// ErrBadCredentials is returned by Store.Authenticate for an unknown name
// and for a wrong password alike, so that a client cannot tell which.
var ErrBadCredentials = errors.New("bad user name or password")

// Store holds the accounts of a users file and checks passwords against
// them. At most a fixed number of scrypt checks run at once across the
// Store; further callers wait for a slot. Replace swaps in the accounts of
// a reloaded users file. All methods are safe for concurrent use.
type Store struct {
	set   atomic.Pointer[accountSet] // the accounts now; replaced whole
	slots chan struct{}              // semaphore: holds one token per check in flight

	checks   atomic.Uint64 // checks finished, including results dropped for a done ctx
	rejected atomic.Uint64 // Authenticate calls that returned ErrBadCredentials
	canceled atomic.Uint64 // Authenticate calls that returned a ctx error
	waiting  atomic.Int64  // callers blocked waiting for a slot

	// verify is Hash.Verify; tests replace it to watch checks run.
	verify func(h Hash, password string) bool
}

// NewStore returns a Store of entries that runs at most maxConcurrent
// checks at once. maxConcurrent <= 0 means max(1, GOMAXPROCS-1), which
// keeps one core free for calls in progress however many logins arrive.
// If a name occurs more than once (ParseUsers never returns such
// entries), the first entry wins. NewStore copies what it keeps of
// entries.
func NewStore(entries []Entry, maxConcurrent int) *Store {
	if maxConcurrent <= 0 {
		maxConcurrent = max(1, runtime.GOMAXPROCS(0)-1)
	}
	s := &Store{
		slots:  make(chan struct{}, maxConcurrent),
		verify: Hash.Verify,
	}
	s.Replace(entries)
	return s
}

// accountSet is one generation of accounts; read-only once made.
type accountSet struct {
	users map[string]Hash
	decoy Hash // checked for unknown names, so they take as long as known ones
}

// Replace makes entries the accounts, at once for every later call: a
// reloaded users file. Checks already running finish against the old
// accounts. As in NewStore, the first entry of a name wins.
func (s *Store) Replace(entries []Entry) {
	set := &accountSet{users: make(map[string]Hash, len(entries)), decoy: newDecoy(entries)}
	for _, e := range entries {
		if _, dup := set.users[e.Name]; dup {
			continue
		}
		set.users[e.Name] = Hash{
			Params: e.Hash.Params,
			Salt:   append([]byte(nil), e.Hash.Salt...),
			Key:    append([]byte(nil), e.Hash.Key...),
		}
	}
	s.set.Store(set)
}

// newDecoy returns a hash that no password matches, with the parameters
// most entries use (the first such on a tie), or DefaultParams if there
// are no entries.
func newDecoy(entries []Entry) Hash {
	p, best := DefaultParams, 0
	count := make(map[Params]int)
	for _, e := range entries {
		count[e.Hash.Params]++
		if n := count[e.Hash.Params]; n > best {
			p, best = e.Hash.Params, n
		}
	}
	h := Hash{Params: p, Salt: make([]byte, saltLen), Key: make([]byte, keyLen)}
	rand.Read(h.Salt) // never fails; see crypto/rand.Read
	rand.Read(h.Key)
	return h
}

// Exists reports whether name is an account. It does not block.
func (s *Store) Exists(name string) bool {
	_, ok := s.set.Load().users[name]
	return ok
}

// Len returns the number of accounts.
func (s *Store) Len() int { return len(s.set.Load().users) }

// Authenticate checks password for the account name. It returns nil on a
// match and ErrBadCredentials for a wrong password or an unknown name (an
// unknown name costs a check too, so timing does not tell them apart).
//
// Authenticate blocks until a check slot is free, then for the check
// itself (about 0.8 s of CPU for the old tool's hashes, 0.1 s for
// DefaultParams). If ctx ends while waiting, it returns an error wrapping
// ctx.Err() at once. A check that has started runs to the end, but if ctx
// is done by then its result is dropped and the ctx error returned.
func (s *Store) Authenticate(ctx context.Context, name, password string) error {
	set := s.set.Load()
	h, known := set.users[name]
	if !known {
		h = set.decoy
	}
	if err := s.acquire(ctx); err != nil {
		s.canceled.Add(1)
		return fmt.Errorf("authenticate: wait for a check slot: %w", err)
	}
	ok := s.check(h, password)
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

// acquire takes a check slot, blocking until one is free or ctx is done.
func (s *Store) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.slots <- struct{}{}:
		return nil
	default:
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// check runs one check in a slot taken by acquire and gives the slot back.
func (s *Store) check(h Hash, password string) bool {
	defer func() {
		<-s.slots
		s.checks.Add(1)
	}()
	return s.verify(h, password)
}

// Stats are a Store's counters, for metrics.
type Stats struct {
	Limit    int    // most checks that run at once
	InFlight int    // checks running now
	Waiting  int    // Authenticate calls waiting for a slot
	Checks   uint64 // checks finished
	Rejected uint64 // Authenticate calls that returned ErrBadCredentials
	Canceled uint64 // Authenticate calls that returned a ctx error
}

// Stats returns a snapshot of s's counters. The fields are read one by one,
// so they may be mutually inconsistent by a few in-progress calls.
func (s *Store) Stats() Stats {
	return Stats{
		Limit:    cap(s.slots),
		InFlight: len(s.slots),
		Waiting:  int(s.waiting.Load()),
		Checks:   s.checks.Load(),
		Rejected: s.rejected.Load(),
		Canceled: s.canceled.Load(),
	}
}
