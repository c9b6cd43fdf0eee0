package cluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dtcall/dtcall/cluster/natstest"
	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/wire"
)

// TestOutage stops the NATS server under three nodes and starts it again
// on the same port, once with the same store directory and once with a
// fresh one: presence comes back without restarting the nodes.
func TestOutage(t *testing.T) {
	for _, fresh := range []bool{false, true} {
		t.Run(fmt.Sprintf("fresh=%v", fresh), func(t *testing.T) { testOutage(t, fresh) })
	}
}

func testOutage(t *testing.T, fresh bool) {
	srv, ns := startCluster(t, 3)
	users := []string{"alice", "bob", "carol"}
	for i, n := range ns {
		n.Register(users[i], wire.SessionID(i+1))
	}
	for _, n := range ns {
		for i, u := range users {
			want := core.Location{Node: ns[i].Node(), Session: wire.SessionID(i + 1)}
			if i == indexOf(ns, n) {
				want.Node = ""
			}
			waitFor(t, 3*time.Second, "presence before the outage", lookupIs(n, u, want))
		}
	}

	srv.Stop()
	for i, n := range ns {
		waitFor(t, 3*time.Second, "the others lost", func() bool {
			for j, o := range ns {
				if j != i && n.core.lostCount(o.Node()) != 1 {
					return false
				}
			}
			return true
		})
		if got, ok := n.Lookup(users[i]); !ok || got != (core.Location{Session: wire.SessionID(i + 1)}) {
			t.Errorf("%s during the outage: local %s at %v %v", n.Node(), users[i], got, ok)
		}
		for j, u := range users {
			if _, ok := n.Lookup(u); j != i && ok {
				t.Errorf("%s during the outage finds remote %s", n.Node(), u)
			}
		}
		if s := n.Stats(); s.Conn != "reconnecting" || s.NodesAlive != 0 {
			t.Errorf("%s during the outage: conn %q, %d alive", n.Node(), s.Conn, s.NodesAlive)
		}
	}
	a, b := ns[0], ns[1]
	if err := a.Media(b.Node(), 2, []byte("x")); !errors.Is(err, ErrNoConnection) {
		t.Errorf("Media during the outage: %v", err)
	}
	a.Signal(b.Node(), core.Signal{Kind: core.SigRing, ToUser: "bob"})
	if s := a.Stats(); s.MediaDropped[DropNoConnection] != 1 || s.SignalsDropped[DropNoConnection] != 1 {
		t.Errorf("drops during the outage: media %v, signals %v", s.MediaDropped, s.SignalsDropped)
	}
	// Sessions change while NATS is away: they are right once it is back.
	a.Register("dave", 40)
	b.Unregister("bob", 2)

	srv.Restart(fresh)
	back := time.Now()
	waitMesh(t, ns, 10*time.Second)
	want := map[string]core.Location{
		"alice": {Node: a.Node(), Session: 1},
		"carol": {Node: ns[2].Node(), Session: 3},
		"dave":  {Node: a.Node(), Session: 40},
	}
	for _, n := range ns {
		for u, loc := range want {
			if loc.Node == n.Node() {
				loc.Node = ""
			}
			waitFor(t, 10*time.Second, "presence after the outage", lookupIs(n, u, loc))
		}
		waitFor(t, 5*time.Second, "bob gone after the outage", lookupGone(n, "bob"))
	}
	took := time.Since(back)
	t.Logf("presence of all nodes back %v after the server", took)
	for _, n := range ns {
		s := n.Stats()
		if s.Conn != "connected" || s.Reconnects != 1 {
			t.Errorf("%s after the outage: conn %q, %d reconnects", n.Node(), s.Conn, s.Reconnects)
		}
		if s.EntriesTotal != len(want) {
			t.Errorf("%s after the outage sees %d entries, want %d", n.Node(), s.EntriesTotal, len(want))
		}
	}
	if err := a.Media(b.Node(), 2, []byte("x")); err != nil {
		t.Errorf("Media after the outage: %v", err)
	}
}

func indexOf(ns []testNode, n testNode) int {
	for i, o := range ns {
		if o.Node() == n.Node() {
			return i
		}
	}
	return -1
}

// TestNewWhileNATSDown: New succeeds with no server, and the node joins
// once the server is up.
func TestNewWhileNATSDown(t *testing.T) {
	srv := natstest.StartServer(t)
	srv.Stop()
	a := startNode(t, srv.URL(), "early")
	a.Register("alice", 1)
	if got, ok := a.Lookup("alice"); !ok || got != (core.Location{Session: 1}) {
		t.Fatalf("local lookup with NATS down: %v %v", got, ok)
	}
	if s := a.Stats(); s.Conn != "reconnecting" {
		t.Errorf("conn %q with NATS down", s.Conn)
	}
	srv.Restart(true)
	b := startNode(t, srv.URL(), "late")
	waitMesh(t, []testNode{a, b}, 10*time.Second)
	waitFor(t, 5*time.Second, "B sees alice", lookupIs(b, "alice", core.Location{Node: a.Node(), Session: 1}))
}
