package cluster

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// A node is alive from the first message heard from it (heartbeat or
// signal) until it is not heard for NodeTimeout, says bye, or this node's
// connection drops. Each change to lost calls Core.NodeLost once.

// lostMemory is how long a lost node is remembered as lost (its entries
// are deleted at once); after that it is merely unknown.
const lostMemory = time.Minute

// heartbeatLoop announces this node every Heartbeat. Publishes while
// disconnected fail, and that is fine.
func (n *Node) heartbeatLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	n.nc.Publish(n.hbSubj, nil)
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.nc.Publish(n.hbSubj, nil)
		}
	}
}

// livenessTick is how often livenessLoop looks: a tenth of NodeTimeout,
// so a node is lost at most NodeTimeout+tick after its last heartbeat.
func (n *Node) livenessTick() time.Duration {
	return max(n.cfg.NodeTimeout/10, 5*time.Millisecond)
}

// livenessLoop loses nodes that went quiet, deletes stale entries (when this
// node is the smallest live id), and retries a failed sync.
func (n *Node) livenessLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.livenessTick())
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case now := <-t.C:
			n.checkNodes(now)
		}
	}
}

func (n *Node) checkNodes(now time.Time) {
	var lost []string
	n.mu.Lock()
	for id, p := range n.nodes {
		if p.alive && now.Sub(p.last) > n.cfg.NodeTimeout {
			n.loseLocked(id, now)
			lost = append(lost, id)
		}
	}
	for id, at := range n.lostAt {
		if now.Sub(at) > lostMemory {
			delete(n.lostAt, id)
			delete(n.nodes, id)
		}
	}
	if n.connected && !n.synced {
		n.queueSyncLocked()
	}
	n.cleanStaleLocked(now)
	n.mu.Unlock()
	for _, id := range lost {
		n.log.Warn("node lost", "peer", id, "reason", "timeout")
	}
}

// loseLocked marks the alive node id lost and queues Core.NodeLost.
func (n *Node) loseLocked(id string, now time.Time) {
	n.nodes[id].alive = false
	n.lostAt[id] = now
	n.queueNodeLostLocked(id)
}

func (n *Node) queueNodeLostLocked(id string) {
	n.stats.nodesLost.Add(1)
	n.events.push(func(c Core) { c.NodeLost(id) })
}

// heardLocked records a message from node id and reports whether it just
// became alive, and whether this node had lost it: it was slow or cut
// off, not dead, and must be told (tellLost), so that it ends its halves
// of the calls this node ended when it lost it.
func (n *Node) heardLocked(id string, now time.Time) (up, wasLost bool) {
	p := n.nodes[id]
	if p == nil {
		p = &peer{}
		n.nodes[id] = p
	}
	p.last = now
	if p.alive {
		return false, false
	}
	p.alive = true
	_, wasLost = n.lostAt[id]
	delete(n.lostAt, id)
	return true, wasLost
}

// tellLost tells node id that this node had lost it (see onHeartbeat).
// A signal id sends right after it is heard again may reach this node
// before the notice (another subscription): a call placed in that moment
// would end with the old ones.
func (n *Node) tellLost(id string) {
	n.nc.Publish(n.hbSubj, []byte(lostPayload+id))
}

// aliveLocked reports whether signals and media can go to node id.
func (n *Node) aliveLocked(id string) bool {
	p := n.nodes[id]
	return n.connected && p != nil && p.alive
}

// onHeartbeat handles dtcall.hb.<id>: a heartbeat or a bye.
func (n *Node) onHeartbeat(m *nats.Msg) {
	id, _ := strings.CutPrefix(m.Subject, hbPrefix)
	if id == n.id || !validID(id) {
		return
	}
	now := time.Now()
	bye := string(m.Data) == byePayload
	lostMe := string(m.Data) == lostPayload+n.id
	n.mu.Lock()
	var up, wasLost, gone bool
	if n.connected && !n.closed {
		if lostMe {
			// id had lost this node and ended its calls with it: end
			// ours with id too, though we never lost it.
			n.queueNodeLostLocked(id)
		}
		if bye {
			if p := n.nodes[id]; p != nil && p.alive {
				n.loseLocked(id, now)
				gone = true
			}
		} else {
			up, wasLost = n.heardLocked(id, now)
		}
	}
	n.mu.Unlock()
	if wasLost {
		n.tellLost(id)
	}
	switch {
	case up:
		n.log.Info("node up", "peer", id)
	case gone:
		n.log.Info("node lost", "peer", id, "reason", "bye")
	}
}

// smallestLiveLocked reports whether this node has the smallest id among
// the live ones: that node deletes the entries of dead nodes.
func (n *Node) smallestLiveLocked() bool {
	for id, p := range n.nodes {
		if p.alive && id < n.id {
			return false
		}
	}
	return true
}

// cleanStaleLocked queues deletes of entries that name a node not alive:
// at once for a node lost while this one was connected, and after
// 3×NodeTimeout (of this node's view being complete and of the entry being
// seen) for a node never heard. Only the smallest live id does it; a
// delete names the revision, so it never removes a newer login.
func (n *Node) cleanStaleLocked(now time.Time) {
	if !n.synced || n.upSince.IsZero() || !n.smallestLiveLocked() {
		return
	}
	grace := 3 * n.cfg.NodeTimeout
	for user, e := range n.entries {
		if e.cleaning || e.Node == n.id || n.aliveLocked(e.Node) {
			continue
		}
		_, lost := n.lostAt[e.Node]
		if !lost && (now.Sub(n.upSince) < grace || now.Sub(e.seen) < grace) {
			continue
		}
		e.cleaning = true
		n.entries[user] = e
		n.ops.push(op{kind: opDelete, user: user, sid: e.Session, rev: e.rev})
	}
}
