package core

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/wire"
)

// These tests run the call state machine with the two parties on two
// cores joined by testBus, an in-process stand-in for the cluster (shared
// presence, signals in order per pair of nodes, media handed over). The
// cluster package's tests and the 3-node tests over a real nats-server
// cover the real thing; these pin down the core's half of it.

type testBus struct {
	mu     sync.Mutex
	nodes  map[string]*testNode
	online map[string]Location
}

type testNode struct {
	bus  *testBus
	id   string
	srv  *Server
	in   chan busSignal // to this node, handled in order by one goroutine
	done chan struct{}
	deaf atomic.Bool // signals to this node are lost (a node that stopped answering)
}

type busSignal struct {
	from string
	sig  Signal
}

func (n *testNode) Node() string { return n.id }

func (n *testNode) Register(user string, id wire.SessionID) (wire.SessionID, bool) {
	b := n.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	old, ok := b.online[user]
	b.online[user] = Location{Node: n.id, Session: id}
	if !ok {
		return 0, false
	}
	if old.Node == n.id {
		return old.Session, true
	}
	if other := b.nodes[old.Node]; other != nil {
		go other.srv.Superseded(old.Session) // never under the caller's lock
	}
	return 0, false
}

func (n *testNode) Unregister(user string, id wire.SessionID) {
	b := n.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.online[user] == (Location{Node: n.id, Session: id}) {
		delete(b.online, user)
	}
}

func (n *testNode) Lookup(user string) (Location, bool) {
	b := n.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	loc, ok := b.online[user]
	if ok && loc.Node == n.id {
		loc.Node = ""
	}
	return loc, ok
}

// on returns node's bus member, nil if it is not on the bus.
func (n *testNode) on(node string) *testNode {
	n.bus.mu.Lock()
	defer n.bus.mu.Unlock()
	return n.bus.nodes[node]
}

func (n *testNode) Signal(node string, sig Signal) {
	if dst := n.on(node); dst != nil && !dst.deaf.Load() {
		dst.in <- busSignal{n.id, sig}
	}
}

func (n *testNode) Media(node string, to wire.SessionID, frame []byte) error {
	if dst := n.on(node); dst != nil {
		dst.srv.DeliverMedia(to, bytes.Clone(frame))
	}
	return nil
}

func (n *testNode) MediaFrom(node string, from wire.SessionID, frame []byte) error {
	if dst := n.on(node); dst != nil {
		dst.srv.RelayMedia(from, bytes.Clone(frame))
	}
	return nil
}

func (n *testNode) LocateSession(id wire.SessionID) (string, bool) {
	n.bus.mu.Lock()
	defer n.bus.mu.Unlock()
	for _, loc := range n.bus.online {
		if loc.Session == id {
			return loc.Node, true
		}
	}
	return "", false
}

// lose takes node out of the bus and tells the others, as the cluster
// does when a node dies.
func (b *testBus) lose(node string) {
	b.mu.Lock()
	delete(b.nodes, node)
	for u, loc := range b.online {
		if loc.Node == node {
			delete(b.online, u)
		}
	}
	var others []*testNode
	for _, n := range b.nodes {
		others = append(others, n)
	}
	b.mu.Unlock()
	for _, n := range others {
		n.srv.NodeLost(node)
	}
}

// newCluster starts n cores joined by a testBus.
func newCluster(t *testing.T, n int, cfg Config) ([]*harness, *testBus) {
	b := &testBus{nodes: map[string]*testNode{}, online: map[string]Location{}}
	var hs []*harness
	for i := range n {
		node := &testNode{bus: b, id: "node" + strconv.Itoa(i), in: make(chan busSignal, 1024), done: make(chan struct{})}
		c := cfg
		c.Directory, c.Peers = node, node
		h := newHarness(t, c)
		node.srv = h.srv
		b.mu.Lock()
		b.nodes[node.id] = node
		b.mu.Unlock()
		go func() {
			defer close(node.done)
			for m := range node.in {
				node.srv.HandleSignal(m.from, m.sig)
			}
		}()
		t.Cleanup(func() { close(node.in); <-node.done })
		hs = append(hs, h)
	}
	return hs, b
}

// answer has a call b and b accept.
func answerAcross(a, b *client) {
	a.say("call", b.user)
	a.expect("ring|available|" + b.user)
	b.expect("ring|incoming|" + a.user)
	b.say("accept", a.user)
	a.expect("call|start|" + b.user)
	b.expect("call|start|" + a.user)
}

func TestCrossNodeCall(t *testing.T) {
	hs, _ := newCluster(t, 2, Config{MediaQueue: 64})
	a, b := hs[0].login("alice"), hs[1].login("bob")
	a.say("lookup", "bob")
	a.expect("lookup|bob|exists")
	answerAcross(a, b)
	var want bytes.Buffer
	for i := range 50 {
		f := bytes.Repeat([]byte{byte(i)}, 32)
		want.Write(f)
		a.media.put(string(f))
	}
	var got bytes.Buffer
	for got.Len() < want.Len() {
		got.WriteString(readMedia(t, b))
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("media across nodes: got %d bytes, want %d, in order", got.Len(), want.Len())
	}
	b.media.put("back")
	if got := readMedia(t, a); got != "back" {
		t.Fatalf("alice got %q", got)
	}
	if st := hs[0].srv.Stats(); st.RemoteCalls != 1 || st.ActiveCalls != 1 {
		t.Fatalf("node 0: %d remote calls, %d active, want 1 and 1", st.RemoteCalls, st.ActiveCalls)
	}
	b.say("end", "alice")
	a.expect("call|end|bob")
	a.quiet()
	b.quiet()
	for i, h := range hs {
		h.srv.mu.Lock()
		n := len(h.srv.remoteCalls)
		h.srv.mu.Unlock()
		if st := h.srv.Stats(); n != 0 || st.RemoteCalls != 0 || st.ActiveCalls != 0 {
			t.Fatalf("node %d after the call: %d calls kept, %d remote, %d active", i, n, st.RemoteCalls, st.ActiveCalls)
		}
	}
	// Media after the call goes nowhere.
	a.media.put("after")
	select {
	case m := <-b.media.out:
		t.Fatalf("media relayed after the call: %q", m)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestCrossNodeRinging(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, a, b *client)
	}{
		{"reject", func(t *testing.T, a, b *client) {
			a.say("call", "bob")
			a.expect("ring|available|bob")
			b.expect("ring|incoming|alice")
			b.say("reject", "alice")
			a.expect("call|reject|bob")
		}},
		{"caller times out", func(t *testing.T, a, b *client) {
			a.say("call", "bob")
			a.expect("ring|available|bob")
			b.expect("ring|incoming|alice")
			a.say("timeout", "bob")
			b.expect("ring|timeout|alice")
		}},
		{"caller cancels", func(t *testing.T, a, b *client) {
			a.say("call", "bob")
			a.expect("ring|available|bob")
			b.expect("ring|incoming|alice")
			a.say("end", "bob")
			b.expect("call|end|alice")
		}},
		{"callee leaves while it rings", func(t *testing.T, a, b *client) {
			a.say("call", "bob")
			a.expect("ring|available|bob")
			b.expect("ring|incoming|alice")
			b.cmd.Close()
			a.expect("call|end|bob")
		}},
		{"caller leaves an answered call", func(t *testing.T, a, b *client) {
			answerAcross(a, b)
			a.cmd.Close()
			b.expect("call|drop|" + b.sid)
		}},
		{"callee busy", func(t *testing.T, a, b *client) {
			a.say("call", "bob")
			a.expect("ring|available|bob")
			b.expect("ring|incoming|alice")
			c := a.h.login("carol")
			c.say("call", "bob")
			c.expect("ring|busy|bob")
			c.quiet()
		}},
		{"callee without media", func(t *testing.T, a, b *client) {
			d := b.h.connect("ip-dave")
			d.user = "dave"
			d.say("login", "dave", "d")
			d.sid = d.expect("resp|login|")[3]
			a.say("call", "dave")
			a.expect("ring|notavailable|dave")
		}},
		{"offline callee", func(t *testing.T, a, b *client) {
			a.say("call", "erin")
			a.expect("ring|notavailable|erin")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs, _ := newCluster(t, 2, Config{})
			a, b := hs[0].login("alice"), hs[1].login("bob")
			tc.run(t, a, b)
			for _, c := range []*client{a, b} {
				if !c.cmd.isClosed() {
					c.quiet()
				}
			}
		})
	}
}

// A login on another node ends the session on the first, as a second login
// on one node does.
func TestCrossNodeRelogin(t *testing.T) {
	hs, _ := newCluster(t, 2, Config{})
	first := hs[0].login("alice")
	b := hs[1].login("bob")
	answerAcross(first, b)
	second := hs[1].login("alice")
	waitFor(t, first.cmd.isClosed)
	b.expect("call|drop|" + b.sid)
	second.say("call", "bob")
	second.expect("ring|available|bob")
}

// When a node is lost, its users' peers on other nodes are told at once.
func TestCrossNodeNodeLost(t *testing.T) {
	hs, bus := newCluster(t, 3, Config{})
	a, b := hs[0].login("alice"), hs[1].login("bob")
	c, d := hs[2].login("carol"), hs[0].login("dave")
	answerAcross(a, b)
	d.say("call", "carol")
	d.expect("ring|available|carol")
	c.expect("ring|incoming|dave")
	bus.lose("node1")
	a.expect("call|drop|" + a.sid)
	a.say("call", "bob")
	a.expect("ring|notavailable|bob")
	d.quiet() // the call between nodes 0 and 2 rings on
	c.say("accept", "dave")
	d.expect("call|start|carol")
}

// A drain whose time runs out drops cross-node calls on both sides.
func TestCrossNodeDrainDeadline(t *testing.T) {
	hs, _ := newCluster(t, 2, Config{})
	a, b := hs[0].login("alice"), hs[1].login("bob")
	answerAcross(a, b)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	hs[1].srv.Shutdown(ctx)
	b.expect("call|drop|" + b.sid)
	a.expect("call|drop|" + a.sid)
}

// splitLogin logs user in on cmdNode from ip and registers its media on
// mediaNode, as a legacy phone behind a balancer without affinity.
func splitLogin(t *testing.T, cmdNode, mediaNode *harness, user, ip string) *client {
	t.Helper()
	c := cmdNode.connectConn(newFakeConn(ip), nil)
	c.user = user
	c.say("login", user, testAccounts[user])
	c.sid = c.expect("resp|login|")[3]
	m := newFakeConn(ip)
	c.media = m
	mediaNode.wg.Go(func() { mediaNode.srv.ServeMedia(context.Background(), m) })
	m.put(ts() + "|" + c.sid)
	waitFor(t, func() bool {
		cmdNode.srv.mu.Lock()
		defer cmdNode.srv.mu.Unlock()
		s := cmdNode.srv.sessions[sidOf(c.sid)]
		return s != nil && s.media != nil && s.media.split != ""
	})
	return c
}

func TestSplitMedia(t *testing.T) {
	hs, _ := newCluster(t, 3, Config{MediaQueue: 64, MediaLossGrace: 10 * time.Millisecond})
	// Alice's commands reach node 0, her media node 1; Bob is on node 2.
	a := splitLogin(t, hs[0], hs[1], "alice", "192.0.2.7")
	b := hs[2].login("bob")
	answerAcross(a, b)
	for i := range 20 {
		a.media.put("a" + strconv.Itoa(i))
		if got := readMedia(t, b); got != "a"+strconv.Itoa(i) {
			t.Fatalf("bob got %q", got)
		}
		b.media.put("b" + strconv.Itoa(i))
		if got := readMedia(t, a); got != "b"+strconv.Itoa(i) {
			t.Fatalf("alice got %q", got)
		}
	}
	// Her media connection dies: Bob is told, as for local media.
	a.media.Close()
	b.expect("call|drop|" + b.sid)

	// Carol on node 0 with media on node 0 calls Dave whose media is split
	// between node 1 (commands) and node 0 (media).
	c := hs[0].login("carol")
	d := splitLogin(t, hs[1], hs[0], "dave", "192.0.2.8")
	answerAcross(c, d)
	c.media.put("to dave")
	if got := readMedia(t, d); got != "to dave" {
		t.Fatalf("dave got %q", got)
	}
	// Dave logs out: his media connection on node 0 is closed.
	d.cmd.Close()
	c.expect("call|drop|" + c.sid)
	waitFor(t, d.media.isClosed)
}

func TestSplitMediaSameIPRule(t *testing.T) {
	hs, _ := newCluster(t, 2, Config{})
	a := hs[0].connectConn(newFakeConn("192.0.2.7"), nil)
	a.user = "alice"
	a.say("login", "alice", "a")
	a.sid = a.expect("resp|login|")[3]
	m := newFakeConn("192.0.2.99") // another address
	hs[1].wg.Go(func() { hs[1].srv.ServeMedia(context.Background(), m) })
	m.put(ts() + "|" + a.sid)
	waitFor(t, m.isClosed)
	if got := transport.Refusal(m.refused.Load()); got != transport.RefuseOrigin {
		t.Fatalf("refusal %v, want %v", got, transport.RefuseOrigin)
	}
	// An unknown session is refused as on one node.
	u := newFakeConn("192.0.2.7")
	hs[1].wg.Go(func() { hs[1].srv.ServeMedia(context.Background(), u) })
	u.put(ts() + "|12345")
	waitFor(t, u.isClosed)
	if got := transport.Refusal(u.refused.Load()); got != transport.RefuseSession {
		t.Fatalf("refusal %v, want %v", got, transport.RefuseSession)
	}
}

// A ring or a split media registration that the other node never answers
// gives up after its wait: the caller hears ring|notavailable, the media
// connection is refused (timeout).
func TestCrossNodeNoAnswer(t *testing.T) {
	hs, bus := newCluster(t, 2, Config{})
	a := hs[0].login("alice")
	b := hs[1].connectConn(newFakeConn("192.0.2.9"), nil)
	b.user = "bob"
	b.say("login", "bob", "b")
	b.sid = b.expect("resp|login|")[3]
	b.registerMedia()
	bus.mu.Lock()
	deaf := bus.nodes["node1"]
	bus.mu.Unlock()
	deaf.deaf.Store(true)

	start := time.Now()
	a.say("call", "bob")
	a.expect("ring|notavailable|bob")
	if took := time.Since(start); took < remoteRingWait {
		t.Fatalf("notavailable after %v, before the ring's wait of %v", took, remoteRingWait)
	}
	a.quiet()

	m := newFakeConn("192.0.2.9") // bob's media, reaching node 0
	start = time.Now()
	hs[0].wg.Go(func() { hs[0].srv.ServeMedia(context.Background(), m) })
	m.put(ts() + "|" + b.sid)
	for range 100 { // bounded: splitBindWait is 3 s
		if m.isClosed() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := transport.Refusal(m.refused.Load()); got != transport.RefuseTimeout {
		t.Fatalf("refusal %v, want %v", got, transport.RefuseTimeout)
	}
	if took := time.Since(start); took < splitBindWait {
		t.Fatalf("refused after %v, before the bind's wait of %v", took, splitBindWait)
	}
}
