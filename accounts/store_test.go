package accounts

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// src is the source of the tests' logins.
var src = netip.MustParseAddr("192.0.2.1")

// cheapStore returns a Store of alice/alicepw and bob/bobpw with cheap
// hashes.
func cheapStore(t testing.TB, maxConcurrent int) *Store {
	t.Helper()
	in := "alice " + mustHash(t, "alicepw") + "\nbob " + mustHash(t, "bobpw") + "\n"
	entries, err := ParseUsers(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	return NewStore(entries, maxConcurrent)
}

func TestStoreSample(t *testing.T) {
	if testing.Short() {
		t.Skip("a second of CPU; skipped in -short mode")
	}
	t.Parallel()
	entries, err := ParseUsers(strings.NewReader(sampleUsers))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(entries, 0)
	if s.Len() != 3 || !s.Exists("zapper") || s.Exists("disabled") {
		t.Fatalf("Len %d, Exists(zapper) %v, Exists(disabled) %v", s.Len(), s.Exists("zapper"), s.Exists("disabled"))
	}
	if err := s.Authenticate(context.Background(), src, "zapper", "railgun"); err != nil {
		t.Errorf("Authenticate(zapper, right password): %v", err)
	}
	if d := s.set.Load().decoys.decoys; len(d) != 1 || d[0].Params != (Params{LogN: 14, R: 8, P: 16}) {
		t.Errorf("decoys %+v, want one with the samples' parameters", d)
	}
}

func TestStoreAuthenticate(t *testing.T) {
	s := cheapStore(t, 2)
	ctx := context.Background()
	tests := []struct {
		name, password string
		want           error
	}{
		{"alice", "alicepw", nil},
		{"bob", "bobpw", nil},
		{"alice", "bobpw", ErrBadCredentials},
		{"bob", "", ErrBadCredentials},
		{"Alice", "alicepw", ErrBadCredentials},
		{"carol", "alicepw", ErrBadCredentials},
		{"", "", ErrBadCredentials},
		{"a|b", "alicepw", ErrBadCredentials},
	}
	for _, tt := range tests {
		err := s.Authenticate(ctx, src, tt.name, tt.password)
		if err != tt.want {
			t.Errorf("Authenticate(%q, %q) = %v, want %v", tt.name, tt.password, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), tt.password) && tt.password != "" {
			t.Errorf("error %q contains the password", err)
		}
	}
	st := s.Stats()
	if want := (Stats{Limit: 2, Checks: uint64(len(tests)), Rejected: uint64(len(tests) - 2)}); st != want {
		t.Errorf("Stats() = %+v, want %+v", st, want)
	}
	if s.Len() != 2 || !s.Exists("alice") || s.Exists("carol") {
		t.Errorf("Len %d, Exists(alice) %v, Exists(carol) %v", s.Len(), s.Exists("alice"), s.Exists("carol"))
	}
}

func TestNewStoreDefaults(t *testing.T) {
	s := NewStore(nil, 0)
	if want := max(1, runtime.GOMAXPROCS(0)-1); s.Stats().Limit != want {
		t.Errorf("Limit %d, want %d", s.Stats().Limit, want)
	}
	if d := s.set.Load().decoys.decoys; s.Len() != 0 || len(d) != 1 || d[0].Params != DefaultParams {
		t.Errorf("Len %d, decoys %+v", s.Len(), d)
	}
	if err := s.Authenticate(context.Background(), src, "x", "y"); err != ErrBadCredentials {
		t.Errorf("Authenticate on an empty store: %v", err)
	}
}

func TestNewStoreCopies(t *testing.T) {
	entries, err := ParseUsers(strings.NewReader("alice " + mustHash(t, "pw")))
	if err != nil {
		t.Fatal(err)
	}
	dup := entries[0]
	dup.Hash, err = ParseMCF(mustHash(t, "other"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(append(entries, dup), 1)
	clear(entries[0].Hash.Key)
	if err := s.Authenticate(context.Background(), src, "alice", "pw"); err != nil {
		t.Errorf("Authenticate after the caller changed its entries: %v", err)
	}
}

// TestStoreCap runs many Authenticate calls at once and checks that no
// more than the limit of checks ever overlap, and that the limit is
// reached.
func TestStoreCap(t *testing.T) {
	const limit, callers = 3, 64
	s := cheapStore(t, limit)
	var inFlight, most atomic.Int32
	s.verify = func(h Hash, password string) bool {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if st := s.Stats(); st.InFlight > limit {
			t.Errorf("Stats().InFlight = %d", st.InFlight)
		}
		time.Sleep(time.Millisecond) // let other callers pile up
		return h.Verify(password)
	}
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			pw := "alicepw"
			if i%2 == 1 {
				pw = "wrong"
			}
			source := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) // one check per source: none throttled
			err := s.Authenticate(context.Background(), source, "alice", pw)
			if (i%2 == 0) != (err == nil) {
				t.Errorf("caller %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m != limit {
		t.Errorf("at most %d checks overlapped, want %d", m, limit)
	}
	st := s.Stats()
	if want := (Stats{Limit: limit, Checks: callers, Rejected: callers / 2}); st != want {
		t.Errorf("Stats() = %+v, want %+v", st, want)
	}
}

// blockingStore returns a one-slot Store whose checks signal started and
// then wait for release.
func blockingStore(t *testing.T) (s *Store, started chan string, release chan struct{}) {
	s = cheapStore(t, 1)
	started, release = make(chan string, 10), make(chan struct{})
	s.verify = func(h Hash, password string) bool {
		started <- password
		<-release
		return h.Verify(password)
	}
	return s, started, release
}

func TestStoreCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, started, release := blockingStore(t)
		first := make(chan error)
		go func() { first <- s.Authenticate(context.Background(), src, "alice", "alicepw") }()
		<-started

		ctx, cancel := context.WithCancel(context.Background())
		second := make(chan error)
		go func() { second <- s.Authenticate(ctx, src, "bob", "bobpw") }()
		synctest.Wait()
		if st := s.Stats(); st.InFlight != 1 || st.Waiting != 1 {
			t.Fatalf("Stats() = %+v, want 1 in flight, 1 waiting", st)
		}
		cancel()
		if err := <-second; !errors.Is(err, context.Canceled) {
			t.Errorf("waiting Authenticate after cancel: %v, want context.Canceled", err)
		}
		if st := s.Stats(); st.InFlight != 1 || st.Waiting != 0 || st.Canceled != 1 {
			t.Errorf("Stats() = %+v, want 1 in flight, 0 waiting, 1 canceled", st)
		}
		close(release)
		if err := <-first; err != nil {
			t.Errorf("first Authenticate: %v", err)
		}
		if len(started) != 0 {
			t.Errorf("the canceled call ran a check")
		}
	})
}

func TestStoreTimeoutWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, started, release := blockingStore(t)
		defer close(release)
		go s.Authenticate(context.Background(), src, "alice", "alicepw")
		<-started

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := s.Authenticate(ctx, src, "bob", "bobpw")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Authenticate: %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Errorf("Authenticate returned after %v, want 100ms", d)
		}
	})
}

func TestStoreCancelDuringCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, started, release := blockingStore(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Authenticate(ctx, src, "alice", "alicepw") }()
		<-started
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Authenticate returned %v before its check ended", err)
		default:
		}
		close(release)
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Authenticate canceled during its check: %v, want context.Canceled", err)
		}
		if st := s.Stats(); st != (Stats{Limit: 1, Checks: 1, Canceled: 1}) {
			t.Errorf("Stats() = %+v", st)
		}
	})
}

func TestStoreAlreadyCanceled(t *testing.T) {
	s, _, _ := blockingStore(t) // a check would block forever
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Authenticate(ctx, src, "alice", "alicepw"); !errors.Is(err, context.Canceled) {
		t.Errorf("Authenticate with a done ctx: %v", err)
	}
	if st := s.Stats(); st != (Stats{Limit: 1, Canceled: 1}) {
		t.Errorf("Stats() = %+v", st)
	}
}

func TestReplace(t *testing.T) {
	s := NewStore(cheapEntries(t, "alice", "bob"), 1)
	ctx := context.Background()
	if err := s.Authenticate(ctx, src, "bob", "pw-bob"); err != nil {
		t.Fatalf("bob before the reload: %v", err)
	}
	s.Replace(cheapEntries(t, "alice", "carol"))
	if s.Exists("bob") || !s.Exists("carol") || s.Len() != 2 {
		t.Fatalf("after Replace: bob %v carol %v len %d", s.Exists("bob"), s.Exists("carol"), s.Len())
	}
	if err := s.Authenticate(ctx, src, "bob", "pw-bob"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("removed bob logs in: %v", err)
	}
	if err := s.Authenticate(ctx, src, "carol", "pw-carol"); err != nil {
		t.Errorf("added carol: %v", err)
	}
}

// cheapEntries are accounts name/pw-name with cheap hashes.
func cheapEntries(t *testing.T, names ...string) []Entry {
	t.Helper()
	var es []Entry
	for _, n := range names {
		mcf, err := NewHash("pw-"+n, Params{LogN: 4, R: 8, P: 1})
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseMCF(mcf)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, Entry{Name: n, Hash: h})
	}
	return es
}
