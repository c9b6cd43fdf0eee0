package accounts

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
)

// shapeEntries returns n accounts per shape, named by shape and number,
// with hashes of those shapes (random bytes: only the shape matters here).
func shapeEntries(counts map[shape]int) []Entry {
	var es []Entry
	for sh, n := range counts {
		for i := range n {
			es = append(es, Entry{Name: fmt.Sprintf("%v-%d", sh, i), Hash: randomHash(sh)})
		}
	}
	return es
}

// recordingStore returns a Store of entries whose checks record the shape
// they were asked to check, without running scrypt.
func recordingStore(entries []Entry) (s *Store, last func() shape) {
	s = NewStore(entries, 1)
	var mu sync.Mutex
	var got shape
	s.verify = func(h Hash, password string) bool {
		mu.Lock()
		got = shape{h.Params, len(h.Salt)}
		mu.Unlock()
		return false
	}
	return s, func() shape {
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

var (
	oldShape = shape{Params{LogN: 14, R: 8, P: 16}, 16}
	newShape = shape{DefaultParams, 16}
	oddShape = shape{Params{LogN: 12, R: 8, P: 1}, 32}
)

// TestDecoyPerName checks that an unknown name is always checked against
// the same shape within a Store, that the shapes of unknown names are
// distributed like the file's, and that another Store (another key) maps
// names otherwise.
func TestDecoyPerName(t *testing.T) {
	counts := map[shape]int{oldShape: 6, newShape: 3, oddShape: 1}
	entries := shapeEntries(counts)
	s, last := recordingStore(entries)
	other, otherLast := recordingStore(entries)
	ctx := context.Background()
	const names = 3000
	seen := make(map[shape]int)
	differ := 0
	for i := range names {
		name := fmt.Sprintf("nobody%d", i)
		s.Authenticate(ctx, src, name, "pw")
		first := last()
		s.Authenticate(ctx, src, name, "other pw")
		if again := last(); again != first {
			t.Fatalf("%s checked as %v, then as %v", name, first, again)
		}
		seen[first]++
		other.Authenticate(ctx, src, name, "pw")
		if otherLast() != first {
			differ++
		}
	}
	for sh, n := range counts {
		want := float64(n) / 10 * names
		sd := math.Sqrt(want * (1 - float64(n)/10))
		if got := float64(seen[sh]); math.Abs(got-want) > 5*sd {
			t.Errorf("%v checks %v unknown names of %d, want %v ± %.0f (like the file: %d of 10)", sh, got, names, want, 5*sd, n)
		}
	}
	if len(seen) != len(counts) {
		t.Errorf("unknown names were checked as %v, want only the file's shapes", seen)
	}
	// Two independent keys agree on a name with probability 0.46 here.
	if differ < names/4 {
		t.Errorf("another Store maps only %d of %d names otherwise: the key does not matter?", differ, names)
	}
}

// TestDecoyKnownNames checks that a wrong password for an account runs its
// own hash's shape.
func TestDecoyKnownNames(t *testing.T) {
	entries := shapeEntries(map[shape]int{oldShape: 2, newShape: 2, oddShape: 2})
	s, last := recordingStore(entries)
	for _, e := range entries {
		if err := s.Authenticate(context.Background(), src, e.Name, "wrong"); err != ErrBadCredentials {
			t.Errorf("%s: %v", e.Name, err)
		}
		if got, want := last(), (shape{e.Hash.Params, len(e.Hash.Salt)}); got != want {
			t.Errorf("%s checked as %v, want %v", e.Name, got, want)
		}
	}
}

// TestDecoyReplace checks that a reload's decoys follow the new file.
func TestDecoyReplace(t *testing.T) {
	s, last := recordingStore(shapeEntries(map[shape]int{oldShape: 1}))
	s.Authenticate(context.Background(), src, "nobody", "pw")
	if last() != oldShape {
		t.Fatalf("one old account: nobody checked as %v", last())
	}
	s.Replace(shapeEntries(map[shape]int{newShape: 1}))
	s.Authenticate(context.Background(), src, "nobody", "pw")
	if last() != newShape {
		t.Errorf("after a reload to one new account: nobody checked as %v", last())
	}
	s.Replace(nil)
	s.Authenticate(context.Background(), src, "nobody", "pw")
	if last() != (shape{DefaultParams, saltLen}) {
		t.Errorf("no accounts: nobody checked as %v, want DefaultParams", last())
	}
}

// TestDecoyNeverMatches checks that no password, the empty one included,
// logs in an unknown name, even one whose decoy shape is a real account's.
func TestDecoyNeverMatches(t *testing.T) {
	s := cheapStore(t, 1)
	for _, pw := range []string{"", "alicepw", "bobpw", "x"} {
		if err := s.Authenticate(context.Background(), src, "mallory", pw); err != ErrBadCredentials {
			t.Errorf("mallory/%q: %v", pw, err)
		}
	}
}
