package cluster

import (
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dtcall/dtcall/cluster/natstest"
	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeCore records a Node's callbacks.
type fakeCore struct {
	mu         sync.Mutex
	signals    []core.Signal
	sigFrom    []string
	frames     [][]byte
	frameTo    []wire.SessionID
	relayed    []wire.SessionID // RelayMedia's sessions, with their frames in frames
	superseded []wire.SessionID
	lost       []string
	lostAt     map[string]time.Time
	stall      chan struct{} // non-nil: DeliverMedia waits for it to close
}

func newFakeCore() *fakeCore { return &fakeCore{lostAt: make(map[string]time.Time)} }

func (c *fakeCore) HandleSignal(from string, sig core.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.signals = append(c.signals, sig)
	c.sigFrom = append(c.sigFrom, from)
}

func (c *fakeCore) DeliverMedia(to wire.SessionID, frame []byte) {
	c.mu.Lock()
	stall := c.stall
	c.mu.Unlock()
	if stall != nil {
		<-stall
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frames = append(c.frames, frame)
	c.frameTo = append(c.frameTo, to)
}

func (c *fakeCore) RelayMedia(from wire.SessionID, frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frames = append(c.frames, frame)
	c.relayed = append(c.relayed, from)
}

func (c *fakeCore) Superseded(sid wire.SessionID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.superseded = append(c.superseded, sid)
}

func (c *fakeCore) NodeLost(node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lost = append(c.lost, node)
	if _, ok := c.lostAt[node]; !ok {
		c.lostAt[node] = time.Now()
	}
}

func (c *fakeCore) wasSuperseded(sid wire.SessionID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.superseded, sid)
}

func (c *fakeCore) lostCount(node string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := 0
	for _, n := range c.lost {
		if n == node {
			k++
		}
	}
	return k
}

func (c *fakeCore) lostTime(node string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.lostAt[node]
	return t, ok
}

func (c *fakeCore) numSignals() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.signals)
}

func (c *fakeCore) numFrames() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames)
}

// testNode is a started Node and its fake core.
type testNode struct {
	*node
	core *fakeCore
}

// node names the embedded field (Node would hide the method Node).
type node = Node

func startNode(t testing.TB, url, name string) testNode {
	t.Helper()
	return startNodeWith(t, Config{URLs: url, Name: name})
}

func startNodeWith(t testing.TB, cfg Config) testNode {
	t.Helper()
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

// startCluster starts a server and k nodes that see one another.
func startCluster(t testing.TB, k int) (*natstest.Server, []testNode) {
	t.Helper()
	srv := natstest.StartServer(t)
	nodes := make([]testNode, k)
	for i := range nodes {
		nodes[i] = startNode(t, srv.URL(), string(rune('a'+i)))
	}
	waitMesh(t, nodes, 5*time.Second)
	return srv, nodes
}

// waitMesh waits until every node is synced and sees all the others alive.
func waitMesh(t testing.TB, nodes []testNode, d time.Duration) {
	t.Helper()
	waitFor(t, d, "nodes see one another", func() bool {
		for _, n := range nodes {
			s := n.Stats()
			if s.NodesAlive != len(nodes)-1 || !s.Synced {
				return false
			}
		}
		return true
	})
}

// waitFor polls cond every 5 ms until it holds or d has passed.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func lookupIs(n testNode, user string, want core.Location) func() bool {
	return func() bool {
		got, ok := n.Lookup(user)
		return ok && got == want
	}
}

func lookupGone(n testNode, user string) func() bool {
	return func() bool {
		_, ok := n.Lookup(user)
		return !ok
	}
}

// syncWriter serializes writes to w (log lines come from several goroutines).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
