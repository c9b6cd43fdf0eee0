package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dtcall/dtcall/cluster/natstest"
	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/wire"
)

func TestSignalsInOrder(t *testing.T) {
	_, ns := startCluster(t, 2)
	a, b := ns[0], ns[1]
	const k = 1000
	for i := range k {
		a.Signal(b.Node(), core.Signal{Kind: core.SigNotice, Call: uint64(i), From: 1, FromUser: "alice",
			To: 2, ToUser: "bob", Notice: "call|start"})
	}
	waitFor(t, 5*time.Second, "all signals arrive", func() bool { return b.core.numSignals() == k })
	b.core.mu.Lock()
	defer b.core.mu.Unlock()
	for i, s := range b.core.signals {
		if s.Call != uint64(i) || b.core.sigFrom[i] != a.Node() || s.ToUser != "bob" || s.Notice != "call|start" {
			t.Fatalf("signal %d: %+v from %s", i, s, b.core.sigFrom[i])
		}
	}
	if s := a.Stats(); s.SignalsSent != k {
		t.Errorf("A sent %d signals, want %d", s.SignalsSent, k)
	}
	if s := b.Stats(); s.SignalsReceived != k {
		t.Errorf("B received %d signals, want %d", s.SignalsReceived, k)
	}
}

func TestMediaDelivered(t *testing.T) {
	_, ns := startCluster(t, 2)
	a, b := ns[0], ns[1]
	const k = 200
	for i := range k {
		if err := a.Media(b.Node(), 7, fmt.Appendf(nil, "frame %03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "all frames arrive", func() bool { return b.core.numFrames() == k })
	b.core.mu.Lock()
	for i, f := range b.core.frames {
		if want := fmt.Appendf(nil, "frame %03d", i); !bytes.Equal(f, want) || b.core.frameTo[i] != 7 {
			t.Fatalf("frame %d: %q to %d", i, f, b.core.frameTo[i])
		}
	}
	b.core.mu.Unlock()
	sa, sb := a.Stats(), b.Stats()
	if sa.MediaFramesSent != k || sa.MediaBytesSent != k*9 || sb.MediaFramesReceived != k || sb.MediaBytesReceived != k*9 {
		t.Errorf("stats: sent %d/%d B, received %d/%d B", sa.MediaFramesSent, sa.MediaBytesSent, sb.MediaFramesReceived, sb.MediaBytesReceived)
	}
	if err := a.Media("nobody-123456", 1, []byte("x")); !errors.Is(err, ErrNodeLost) {
		t.Errorf("Media to an unknown node: %v", err)
	}
	a.Signal("nobody-123456", core.Signal{Kind: core.SigRing, ToUser: "x"})
	if s := a.Stats(); s.MediaDropped[DropLostNode] != 1 || s.SignalsDropped[DropLostNode] != 1 {
		t.Errorf("drops to an unknown node: media %v, signals %v", s.MediaDropped, s.SignalsDropped)
	}
}

// Frames a client sent through another node's media connection reach its
// session's node as RelayMedia, and LocateSession finds that node.
func TestMediaFromAndLocate(t *testing.T) {
	_, ns := startCluster(t, 2)
	a, b := ns[0], ns[1]
	b.Register("alice", 42)
	waitFor(t, 5*time.Second, "a sees alice's session", func() bool {
		node, ok := a.LocateSession(42)
		return ok && node == b.Node()
	})
	if node, ok := b.LocateSession(42); !ok || node != "" {
		t.Fatalf("b.LocateSession(42) = %q, %v; want its own", node, ok)
	}
	if _, ok := a.LocateSession(43); ok {
		t.Fatal("an unknown session was located")
	}
	for i := range 10 {
		if err := a.MediaFrom(b.Node(), 42, fmt.Appendf(nil, "from %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "all frames relayed", func() bool { return b.core.numFrames() == 10 })
	b.core.mu.Lock()
	defer b.core.mu.Unlock()
	for i, f := range b.core.frames {
		if want := fmt.Sprintf("from %d", i); string(f) != want || len(b.core.relayed) != 10 || b.core.relayed[i] != 42 {
			t.Fatalf("frame %d: %q, relayed %v", i, f, b.core.relayed)
		}
	}
}

// TestMediaSlowCore stalls B's DeliverMedia: frames beyond the media
// subscription's pending limits are dropped and counted, and signals still flow.
func TestMediaSlowCore(t *testing.T) {
	_, ns := startCluster(t, 2)
	a, b := ns[0], ns[1]
	stall := make(chan struct{})
	b.core.mu.Lock()
	b.core.stall = stall
	b.core.mu.Unlock()
	const k = 5000
	frame := bytes.Repeat([]byte{0xAA}, 160)
	for range k {
		a.Media(b.Node(), 9, frame)
	}
	a.nc.Flush()
	waitFor(t, 5*time.Second, "drops counted", func() bool {
		return b.Stats().MediaDropped[DropSlowConsumer] >= k-mediaPendMsgs-1
	})
	a.Signal(b.Node(), core.Signal{Kind: core.SigNotice, Call: 1, Notice: "call|end"})
	waitFor(t, 3*time.Second, "a signal passes a stalled media path", func() bool { return b.core.numSignals() == 1 })
	close(stall)
	waitFor(t, 5*time.Second, "every frame delivered or dropped", func() bool {
		s := b.Stats()
		return uint64(b.core.numFrames())+s.MediaDropped[DropSlowConsumer] == k
	})
	if n := b.core.numFrames(); n > mediaPendMsgs+1 {
		t.Errorf("%d frames delivered after the stall, want at most %d", n, mediaPendMsgs+1)
	}
	t.Logf("slow core: %d frames delivered, %d dropped", b.core.numFrames(), b.Stats().MediaDropped[DropSlowConsumer])
}

func TestNodeLoss(t *testing.T) {
	_, ns := startCluster(t, 3)
	a, b, c := ns[0], ns[1], ns[2]
	c.Register("carol", 5)
	for _, n := range []testNode{a, b} {
		waitFor(t, 3*time.Second, "carol seen", lookupIs(n, "carol", core.Location{Node: c.Node(), Session: 5}))
	}
	a.Register("alice", 1)
	waitFor(t, 3*time.Second, "C sees alice", lookupIs(c, "alice", core.Location{Node: a.Node(), Session: 1}))
	died := time.Now()
	c.nc.Close() // dies: no bye, no deletes
	for _, n := range []testNode{a, b} {
		waitFor(t, 3*time.Second, "C reported lost", func() bool { _, ok := n.core.lostTime(c.Node()); return ok })
		at, _ := n.core.lostTime(c.Node())
		took := at.Sub(died)
		t.Logf("%s reports %s lost after %v", n.Node(), c.Node(), took)
		if took > 2*time.Second {
			t.Errorf("%s took %v to lose %s, want under 2s", n.Node(), took, c.Node())
		}
		if _, ok := n.Lookup("carol"); ok {
			t.Errorf("%s still finds carol on the lost node", n.Node())
		}
	}
	// The smallest live id deletes the dead node's entries from the bucket.
	for _, n := range []testNode{a, b} {
		waitFor(t, 3*time.Second, "carol's entry deleted", func() bool { return n.Stats().EntriesTotal == 1 })
	}
	if err := a.Media(c.Node(), 5, []byte("x")); !errors.Is(err, ErrNodeLost) {
		t.Errorf("Media to the lost node: %v", err)
	}
	if a.core.lostCount(c.Node()) != 1 || b.core.lostCount(c.Node()) != 1 {
		t.Errorf("NodeLost called %d and %d times, want once", a.core.lostCount(c.Node()), b.core.lostCount(c.Node()))
	}
	if a.core.lostCount(b.Node()) != 0 {
		t.Error("A lost B too")
	}
}

func TestCleanClose(t *testing.T) {
	_, ns := startCluster(t, 2)
	a, b := ns[0], ns[1]
	b.Register("bob", 3)
	b.Register("bert", 4)
	waitFor(t, 3*time.Second, "A sees bob", lookupIs(a, "bob", core.Location{Node: b.Node(), Session: 3}))
	waitFor(t, 3*time.Second, "A sees bert", lookupIs(a, "bert", core.Location{Node: b.Node(), Session: 4}))
	closed := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b.Close() // idempotent
	waitFor(t, time.Second, "B lost at once", func() bool { return a.core.lostCount(b.Node()) == 1 })
	at, _ := a.core.lostTime(b.Node())
	t.Logf("clean close: NodeLost after %v", at.Sub(closed))
	if at.Sub(closed) > 500*time.Millisecond {
		t.Errorf("NodeLost %v after Close, want at once", at.Sub(closed))
	}
	if _, ok := a.Lookup("bob"); ok {
		t.Error("A still finds bob")
	}
	waitFor(t, 2*time.Second, "B's entries gone from the bucket", func() bool { return a.Stats().EntriesTotal == 0 })
	if s := b.Stats(); s.Conn != "closed" {
		t.Errorf("closed node's connection is %q", s.Conn)
	}
}

func TestSignalsDroppedWhenLost(t *testing.T) {
	_, ns := startCluster(t, 2)
	a, b := ns[0], ns[1]
	b.Close()
	waitFor(t, time.Second, "B lost", func() bool { return a.core.lostCount(b.Node()) == 1 })
	a.Signal(b.Node(), core.Signal{Kind: core.SigRing, From: 1, FromUser: "a", ToUser: "b"})
	if s := a.Stats(); s.SignalsDropped[DropLostNode] != 1 || s.SignalsSent != 0 {
		t.Errorf("signal to a lost node: sent %d, dropped %v", s.SignalsSent, s.SignalsDropped)
	}
	_ = wire.SessionID(0)
}

// A node that was lost but not dead (here: its heartbeats come too seldom)
// hears that it was lost when it is heard again, and ends its calls with
// the node that lost it, as that node ended its own.
func TestLostButAliveIsTold(t *testing.T) {
	srv := natstest.StartServer(t)
	a := startNode(t, srv.URL(), "a")
	slow := startNodeWith(t, Config{URLs: srv.URL(), Name: "slow", Heartbeat: 2 * time.Second, NodeTimeout: 4 * time.Second})
	waitFor(t, 5*time.Second, "a loses slow", func() bool { return a.core.lostCount(slow.Node()) >= 1 })
	waitFor(t, 5*time.Second, "slow hears that a lost it", func() bool { return slow.core.lostCount(a.Node()) >= 1 })
	if s := slow.Stats(); s.NodesAlive != 1 {
		t.Fatalf("slow sees %d nodes alive, want 1 (it never lost a)", s.NodesAlive)
	}
}
