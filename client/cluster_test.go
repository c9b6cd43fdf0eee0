package client_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/cluster/natstest"
	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/internal/testserver"
)

// These tests run three dtoperator nodes in one process, joined by a real
// nats-server (embedded, on a loopback port), with real TLS and QUIC
// between the clients and their nodes.

// startCluster runs n nodes on one NATS server until the end of t.
func startCluster(t *testing.T, n int, ccfg core.Config) ([]*server, *natstest.Server) {
	t.Helper()
	ns := natstest.StartServer(t)
	cert := testcert.Write(t) // one name behind the balancer: one certificate
	var nodes []*server
	for i := range n {
		ts := testserver.Start(t, testserver.Config{Core: ccfg, Cert: cert, NATS: ns.URL(), Name: "node" + strconv.Itoa(i)})
		nodes = append(nodes, &server{
			Server:      ts,
			commandPort: ts.CommandPort, mediaPort: ts.MediaPort, quicPort: ts.QUICPort,
			certFile: ts.Cert.CertFile, der: ts.Cert.DER,
			core: ts.Core, dhe: ts.Legacy.DHEAvailable(),
		})
	}
	waitNodes(t, nodes, n-1)
	return nodes, ns
}

// waitNodes waits until every node hears alive others.
func waitNodes(t *testing.T, nodes []*server, alive int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range nodes {
		for s.Node.Stats().NodesAlive != alive || !s.Node.Stats().Synced {
			if time.Now().After(deadline) {
				t.Fatalf("node %s hears %d nodes, want %d", s.Node.Node(), s.Node.Stats().NodesAlive, alive)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// waitLocated waits until this server's node knows where c's session is
// (its presence cache has caught up with c's login on another node). A
// single server knows at once.
func (s *server) waitLocated(t *testing.T, c *client.Client) {
	t.Helper()
	if s.Node == nil {
		return
	}
	for range 500 {
		if loc, ok := s.Node.Lookup(c.User()); ok && strconv.FormatUint(uint64(loc.Session), 10) == c.SessionID() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: %s's session %s never seen", s.Node.Node(), c.User(), c.SessionID())
}

// Every reply of PROTOCOL.md with alice, bob and carol on three nodes, for
// every pairing of client kinds.
func TestEveryReplyAcrossNodes(t *testing.T) {
	for _, ka := range kinds {
		for _, kb := range kinds {
			t.Run(ka.name+"→"+kb.name, func(t *testing.T) {
				nodes, _ := startCluster(t, 3, core.Config{MediaLossGrace: time.Millisecond})
				everyReply(t, [3]*server{nodes[0], nodes[1], nodes[2]}, ka, kb)
			})
		}
	}
}

// Every transport pairing across two nodes, media byte-exact both ways.
func TestMixedCallsAcrossNodes(t *testing.T) {
	nodes, _ := startCluster(t, 2, core.Config{})
	trs := []client.Transport{client.TCP, client.QUIC, client.QUICDatagram}
	for _, ta := range trs {
		for _, tb := range trs {
			t.Run(ta.String()+"-"+tb.String(), func(t *testing.T) {
				a, b := nodes[0].online(t, "alice", ta), nodes[1].online(t, "bob", tb)
				nodes[0].waitLocated(t, b)
				call(t, a, b)
				exchange(t, a, b, 4)
				if err := a.End(context.Background(), "bob"); err != nil {
					t.Fatal(err)
				}
				expectEvent(t, b, client.Ended, "alice")
				a.Close()
				b.Close()
			})
		}
	}
}

// A legacy phone whose media connection reaches another node than its
// command connection (a balancer without affinity) calls as usual.
func TestSplitLegacyConnections(t *testing.T) {
	nodes, _ := startCluster(t, 3, core.Config{MediaLossGrace: time.Millisecond})
	ctx := context.Background()
	o := nodes[0].options(client.TCP)
	o.MediaPort = nodes[1].mediaPort // commands to node 0, media to node 1
	a := nodes[0].dial(t, o)
	if err := a.Login(ctx, "alice", "pw-alice"); err != nil {
		t.Fatal(err)
	}
	if err := a.RegisterMedia(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []client.Transport{client.TCP, client.QUIC, client.QUICDatagram} {
		t.Run(tr.String(), func(t *testing.T) {
			b := nodes[2].online(t, "bob", tr)
			nodes[0].waitLocated(t, b)
			call(t, a, b)
			exchange(t, a, b, 4)
			if err := b.End(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			expectEvent(t, a, client.Ended, "bob")
			if err := a.RegisterMedia(ctx); err != nil { // fresh media after a call, on node 1 again
				t.Fatal(err)
			}
			b.Close()
		})
	}
	// The split media connection dies in a call: the peer is told.
	b := nodes[2].online(t, "bob", client.QUIC)
	nodes[0].waitLocated(t, b)
	call(t, a, b)
	a.Media().Close()
	expectEvent(t, b, client.Dropped, "alice")
}

// Two logins of one user on two nodes at the same moment leave exactly
// one session.
func TestSimultaneousLoginsAcrossNodes(t *testing.T) {
	nodes, _ := startCluster(t, 2, core.Config{})
	for round := range 10 {
		var cs [2]*client.Client
		var wg sync.WaitGroup
		for i := range cs {
			c := nodes[i].dial(t, nodes[i].options(client.TCP))
			cs[i] = c
			wg.Go(func() {
				if err := c.Login(context.Background(), "alice", "pw-alice"); err != nil {
					t.Errorf("login on node %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		deadline := time.Now().Add(10 * time.Second)
		for {
			open := 0
			for _, c := range cs {
				if c.Err() == nil {
					open++
				}
			}
			if open == 1 {
				break
			}
			if open == 0 || time.Now().After(deadline) {
				t.Fatalf("round %d: %d sessions of alice left, want 1", round, open)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, c := range cs {
			c.Close()
		}
	}
}

// A node that dies drops only its own users: their peers on other nodes
// are told within 3 s, and the lost users log in again elsewhere at once.
func TestNodeLossAcrossNodes(t *testing.T) {
	nodes, _ := startCluster(t, 3, core.Config{})
	a, b := nodes[0].online(t, "alice", client.TCP), nodes[1].online(t, "bob", client.QUIC)
	c, d := nodes[0].online(t, "carol", client.QUIC), nodes[2].online(t, "dave", client.TCP)
	nodes[0].waitLocated(t, b)
	nodes[0].waitLocated(t, d)
	call(t, a, b)
	call(t, c, d)
	killed := time.Now()
	nodes[1].Kill()
	expectEvent(t, a, client.Dropped, "bob")
	if took := time.Since(killed); took > 3*time.Second {
		t.Fatalf("alice heard of the drop %v after the node died, want ≤ 3 s", took)
	}
	t.Logf("the peer of a user on the dead node got call|drop %v after the kill", time.Since(killed).Round(time.Millisecond))
	exchange(t, c, d, 2) // the call between the other two nodes goes on
	b2 := nodes[2].online(t, "bob", client.QUIC)
	nodes[0].waitLocated(t, b2)
	call(t, a, b2)
	exchange(t, a, b2, 1)
}

// Without NATS every node serves its own users and local calls, cross-node
// calls fail clearly, and presence comes back with NATS, no restart.
func TestNATSLossAndReturn(t *testing.T) {
	nodes, ns := startCluster(t, 2, core.Config{})
	a, b := nodes[0].online(t, "alice", client.TCP), nodes[1].online(t, "bob", client.QUICDatagram)
	c := nodes[0].online(t, "carol", client.QUIC)
	nodes[0].waitLocated(t, b)
	call(t, a, b)
	ns.Stop()
	expectEvent(t, a, client.Dropped, "bob")
	expectEvent(t, b, client.Dropped, "alice")
	expectCall(t, a, "bob", client.NotAvailable)
	call(t, c, a) // local
	exchange(t, c, a, 2)
	if err := c.End(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, a, client.Ended, "carol")

	ns.Restart(true) // a fresh, empty server on the same port
	waitNodes(t, nodes, 1)
	nodes[0].waitLocated(t, b)
	nodes[1].waitLocated(t, a)
	if err := a.RegisterMedia(context.Background()); err != nil {
		t.Fatal(err)
	}
	call(t, a, b)
	exchange(t, a, b, 2)
}

// An upgrade: the old process drains while the new one serves. Idle users
// move to the new process; a call between a user on the old process and
// one on the new goes on, media both ways, until it is hung up; then the
// drain ends.
func TestDrainAcrossNodes(t *testing.T) {
	nodes, _ := startCluster(t, 2, core.Config{})
	old, fresh := nodes[0], nodes[1]
	idle := old.online(t, "alice", client.TCP)
	c, d := old.online(t, "carol", client.QUIC), fresh.online(t, "dave", client.TCP)
	old.waitLocated(t, d)
	call(t, c, d)

	old.Legacy.CloseListeners()
	old.QUIC.CloseListeners()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		old.Core.Shutdown(ctx)
	}()
	expectClosed(t, idle) // idle sessions leave the old process at once
	a := fresh.online(t, "alice", client.QUIC)
	b := fresh.online(t, "bob", client.QUICDatagram)
	call(t, a, b)
	exchange(t, a, b, 1)
	for range 3 {
		exchange(t, c, d, 2)
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case <-drained:
		t.Fatal("the drain ended with a call in progress")
	default:
	}
	if err := d.End(context.Background(), "carol"); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, c, client.Ended, "dave")
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("the drain did not end after the last call")
	}
}
