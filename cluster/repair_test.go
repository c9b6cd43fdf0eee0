package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dtcall/dtcall/cluster/natstest"
	"github.com/dtcall/dtcall/core"
)

// TestBucketRepairs writes to the bucket behind the nodes' backs: an entry
// of a node never heard is absent for Lookup and deleted after 3×NodeTimeout;
// an entry naming a live node's session that ended is deleted by that
// node; a live session's entry deleted by someone else is put again.
func TestBucketRepairs(t *testing.T) {
	srv := natstest.StartServer(t)
	cfg := Config{URLs: srv.URL(), Heartbeat: 50 * time.Millisecond, NodeTimeout: 300 * time.Millisecond}
	ns := []testNode{startNodeConfig(t, cfg, "a"), startNodeConfig(t, cfg, "b")}
	waitMesh(t, ns, 5*time.Second)
	a, b := ns[0], ns[1]
	a.Register("alice", 1)
	waitFor(t, 3*time.Second, "B sees alice", lookupIs(b, "alice", core.Location{Node: a.Node(), Session: 1}))

	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucketName)
	if err != nil {
		t.Fatal(err)
	}
	put := func(user string, p presence) {
		t.Helper()
		if _, err := kv.Put(ctx, userKey(user), encodePresence(p)); err != nil {
			t.Fatal(err)
		}
	}
	gone := func(user string) func() bool {
		return func() bool {
			_, err := kv.Get(ctx, userKey(user))
			return err == jetstream.ErrKeyNotFound
		}
	}

	put("ghost", presence{Node: "ghost-000000", Session: 9})
	put("stale", presence{Node: a.Node(), Session: 99})
	waitFor(t, 3*time.Second, "B sees the ghost's entry", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		_, ok := b.entries["ghost"]
		return ok
	})
	if _, ok := b.Lookup("ghost"); ok {
		t.Error("Lookup finds a user of a node never heard")
	}
	waitFor(t, 3*time.Second, "A deletes its stale entry", gone("stale"))
	start := time.Now()
	waitFor(t, 5*time.Second, "the ghost's entry deleted", gone("ghost"))
	t.Logf("never-heard node's entry deleted after %v (3×NodeTimeout = %v)", time.Since(start), 3*cfg.NodeTimeout)

	if err := kv.Delete(ctx, userKey("alice")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "A puts alice again", func() bool {
		e, err := kv.Get(ctx, userKey("alice"))
		return err == nil && string(e.Value()) == string(encodePresence(presence{Node: a.Node(), Session: 1}))
	})
	waitFor(t, 3*time.Second, "B sees alice again", lookupIs(b, "alice", core.Location{Node: a.Node(), Session: 1}))
}

func startNodeConfig(t testing.TB, cfg Config, name string) testNode {
	t.Helper()
	cfg.Name = name
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := newFakeCore()
	if err := n.Start(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return testNode{n, c}
}
