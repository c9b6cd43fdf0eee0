package cluster

import (
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// The connection handlers run on nats.go's callback goroutine, one at a
// time, in the order the connection changed state.

func (n *Node) onConnect(nc *nats.Conn) {
	url := nc.ConnectedUrlRedacted()
	n.log.Info("nats connected", "url", url)
	n.connectedAgain(url)
}

func (n *Node) onReconnect(nc *nats.Conn) {
	n.stats.reconnects.Add(1)
	url := nc.ConnectedUrlRedacted()
	n.log.Info("nats reconnected", "url", url)
	n.connectedAgain(url)
}

// connectedAgain rebuilds presence: a sync binds the bucket, re-puts the
// local entries and restarts the watcher. Nodes come back as they are heard.
func (n *Node) connectedAgain(url string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.connected = true
	n.lastURL = url
	if n.started && !n.closed {
		n.queueSyncLocked()
	}
}

// onDisconnect loses every other node at once: while disconnected nothing
// reaches them, so their calls end now rather than hang.
func (n *Node) onDisconnect(nc *nats.Conn, err error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.connected = false
	n.synced = false
	n.upSince = time.Time{}
	lost := n.loseAllLocked()
	url := n.lastURL
	n.mu.Unlock()
	n.log.Warn("nats disconnected", "url", url, "err", err, "nodes_lost", lost)
}

// loseAllLocked reports every alive node lost and forgets all nodes: after
// a reconnect, a node counts again once heard.
func (n *Node) loseAllLocked() int {
	lost := 0
	for id, p := range n.nodes {
		if p.alive {
			n.queueNodeLostLocked(id)
			lost++
		}
	}
	clear(n.nodes)
	clear(n.lostAt)
	return lost
}

func (n *Node) onClosed(nc *nats.Conn) {
	n.mu.Lock()
	closing := n.closed
	n.connected = false
	n.synced = false
	lost := 0
	if !closing {
		lost = n.loseAllLocked()
	}
	n.mu.Unlock()
	if !closing {
		n.log.Warn("nats connection closed", "url", n.urls, "nodes_lost", lost)
	}
}

func (n *Node) onAsyncError(nc *nats.Conn, sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) {
		n.stats.slowConsumerEvents.Add(1)
		if sub == n.medSub || sub == n.fromSub {
			return // counted per frame through sub.Dropped, not logged per burst
		}
	}
	n.log.Warn("nats error", "err", err)
}
