package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/wire"
)

func TestPresenceAcrossNodes(t *testing.T) {
	_, ns := startCluster(t, 3)
	a, b, c := ns[0], ns[1], ns[2]
	users := []string{"alice", "bob.smith", "x*y>z", "", "ünï cödé", "a/b\\c d\te"}
	for i, u := range users {
		if _, ok := a.Register(u, wire.SessionID(i+1)); ok {
			t.Fatalf("Register(%q) replaced something", u)
		}
		if got, ok := a.Lookup(u); !ok || got != (core.Location{Session: wire.SessionID(i + 1)}) {
			t.Fatalf("A.Lookup(%q) right after Register = %v %v", u, got, ok)
		}
	}
	for i, u := range users {
		want := core.Location{Node: a.Node(), Session: wire.SessionID(i + 1)}
		waitFor(t, 3*time.Second, "B sees "+u, lookupIs(b, u, want))
		waitFor(t, 3*time.Second, "C sees "+u, lookupIs(c, u, want))
	}
	if old, ok := a.Register("alice", 100); !ok || old != 1 {
		t.Fatalf("re-Register on the same node replaced %v %v, want 1 true", old, ok)
	}
	waitFor(t, 3*time.Second, "B sees alice's new session", lookupIs(b, "alice", core.Location{Node: a.Node(), Session: 100}))
	a.Unregister("alice", 1) // not the current session: no effect
	a.Unregister("alice", 100)
	if _, ok := a.Lookup("alice"); ok {
		t.Fatal("A still finds alice after Unregister")
	}
	waitFor(t, 3*time.Second, "B forgets alice", lookupGone(b, "alice"))
	waitFor(t, 3*time.Second, "C forgets alice", lookupGone(c, "alice"))
	if got, ok := b.Lookup("bob.smith"); !ok || got.Node != a.Node() {
		t.Fatalf("B lost bob.smith: %v %v", got, ok)
	}
	if s := b.Stats(); s.EntriesTotal != len(users)-1 || s.EntriesLocal != 0 {
		t.Fatalf("B stats entries %d total %d local, want %d, 0", s.EntriesTotal, s.EntriesLocal, len(users)-1)
	}
}

func TestReLoginOnOtherNode(t *testing.T) {
	_, ns := startCluster(t, 2)
	a, b := ns[0], ns[1]
	a.Register("alice", 1)
	waitFor(t, 3*time.Second, "B sees alice on A", lookupIs(b, "alice", core.Location{Node: a.Node(), Session: 1}))
	b.Register("alice", 2)
	waitFor(t, 3*time.Second, "A's session superseded", func() bool { return a.core.wasSuperseded(1) })
	waitFor(t, 3*time.Second, "A finds alice on B", lookupIs(a, "alice", core.Location{Node: b.Node(), Session: 2}))
	// The core ends the superseded session: Unregister must not delete B's entry.
	a.Unregister("alice", 1)
	if b.core.wasSuperseded(2) {
		t.Fatal("B's session superseded too")
	}
	time.Sleep(100 * time.Millisecond) // let a wrong delete, if any, land
	if got, ok := a.Lookup("alice"); !ok || got.Node != b.Node() {
		t.Fatalf("after A's Unregister, A finds alice at %v %v", got, ok)
	}
	if got, ok := b.Lookup("alice"); !ok || got != (core.Location{Session: 2}) {
		t.Fatalf("B finds alice at %v %v", got, ok)
	}
}

// TestSimultaneousLogins logs one user in on two nodes at once, 50 times:
// each time exactly one session survives and the other is superseded.
func TestSimultaneousLogins(t *testing.T) {
	_, ns := startCluster(t, 2)
	a, b := ns[0], ns[1]
	const rounds = 50
	for i := range rounds {
		user := fmt.Sprintf("user%d", i)
		sa, sb := wire.SessionID(1000+i), wire.SessionID(2000+i)
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); <-start; a.Register(user, sa) }()
		go func() { defer wg.Done(); <-start; b.Register(user, sb) }()
		close(start)
		wg.Wait()
		waitFor(t, 5*time.Second, "one session of "+user+" superseded", func() bool {
			return a.core.wasSuperseded(sa) || b.core.wasSuperseded(sb)
		})
		// Both nodes agree on the survivor.
		winner, winSid, loser := b, sb, a
		if b.core.wasSuperseded(sb) {
			winner, winSid, loser = a, sa, b
		}
		want := core.Location{Node: winner.Node(), Session: winSid}
		waitFor(t, 5*time.Second, "loser finds the winner for "+user, lookupIs(loser, user, want))
		if got, ok := winner.Lookup(user); !ok || got != (core.Location{Session: winSid}) {
			t.Fatalf("round %d: winner finds %v %v", i, got, ok)
		}
	}
	// No round ends with both superseded, not even later.
	time.Sleep(200 * time.Millisecond)
	for i := range rounds {
		if a.core.wasSuperseded(wire.SessionID(1000+i)) && b.core.wasSuperseded(wire.SessionID(2000+i)) {
			t.Errorf("round %d: both sessions superseded", i)
		}
	}
	if s := a.Stats().Superseded + b.Stats().Superseded; s != rounds {
		t.Errorf("superseded %d sessions in %d rounds", s, rounds)
	}
}

// Resolve finds an entry the cache does not hold (here: removed from it,
// as if the watcher had not delivered it yet) in the bucket itself.
func TestResolveReadsTheBucket(t *testing.T) {
	_, ns := startCluster(t, 2)
	a, b := ns[0], ns[1]
	a.Register("zoe", 9)
	want := core.Location{Node: a.Node(), Session: 9}
	waitFor(t, 5*time.Second, "b sees zoe", lookupIs(b, "zoe", want))
	b.mu.Lock()
	delete(b.entries, "zoe")
	b.mu.Unlock()
	if _, ok := b.Lookup("zoe"); ok {
		t.Fatal("zoe still in b's cache")
	}
	b.Resolve(context.Background(), "zoe")
	if got, ok := b.Lookup("zoe"); !ok || got != want {
		t.Fatalf("after Resolve: %v, %v; want %v", got, ok, want)
	}
	b.Resolve(context.Background(), "nobody") // not in the bucket: nothing
	if _, ok := b.Lookup("nobody"); ok {
		t.Fatal("nobody found")
	}
}
