package cluster

import "github.com/nats-io/nats.go"

// Stats is a snapshot of a Node's counters and state, for metrics.
type Stats struct {
	Node string

	SignalsSent, SignalsReceived uint64
	SignalsBad                   uint64            // malformed received, or invalid given to Signal
	SignalsDropped               map[string]uint64 // by reason: no_connection, lost_node

	MediaFramesSent, MediaBytesSent         uint64
	MediaFramesReceived, MediaBytesReceived uint64
	MediaDropped                            map[string]uint64 // by reason: slow_consumer, no_connection, lost_node
	SlowConsumerEvents                      uint64            // NATS slow consumer reports (any subscription)

	NodesAlive int    // other nodes alive now
	NodesLost  uint64 // NodeLost calls queued so far

	EntriesLocal int // sessions of this node in the directory
	EntriesTotal int // entries in the bucket as last watched (all nodes)
	Synced       bool

	PresencePuts, PresenceDeletes, PresenceErrors uint64
	Superseded                                    uint64

	Conn       string // "connected", "reconnecting" or "closed"
	Reconnects uint64
}

// Stats returns a snapshot. It does not block on the network.
func (n *Node) Stats() Stats {
	c := &n.stats
	s := Stats{
		Node:                n.id,
		SignalsSent:         c.sigSent.Load(),
		SignalsReceived:     c.sigRecv.Load(),
		SignalsBad:          c.sigBad.Load(),
		MediaFramesSent:     c.medSent.Load(),
		MediaBytesSent:      c.medSentBytes.Load(),
		MediaFramesReceived: c.medRecv.Load(),
		MediaBytesReceived:  c.medRecvBytes.Load(),
		SlowConsumerEvents:  c.slowConsumerEvents.Load(),
		NodesLost:           c.nodesLost.Load(),
		PresencePuts:        c.presencePuts.Load(),
		PresenceDeletes:     c.presenceDeletes.Load(),
		PresenceErrors:      c.presenceErrors.Load(),
		Superseded:          c.superseded.Load(),
		Reconnects:          c.reconnects.Load(),
		SignalsDropped: map[string]uint64{
			DropNoConnection: c.sigDropConn.Load(),
			DropLostNode:     c.sigDropLost.Load(),
		},
		MediaDropped: map[string]uint64{
			DropSlowConsumer: 0,
			DropNoConnection: c.medDropConn.Load(),
			DropLostNode:     c.medDropLost.Load(),
		},
	}
	n.mu.Lock()
	for _, p := range n.nodes {
		if p.alive {
			s.NodesAlive++
		}
	}
	s.EntriesLocal = len(n.local)
	s.EntriesTotal = len(n.entries)
	s.Synced = n.synced
	subs := []*nats.Subscription{n.medSub, n.fromSub}
	n.mu.Unlock()
	for _, sub := range subs {
		if sub == nil {
			continue
		}
		if d, err := sub.Dropped(); err == nil {
			s.MediaDropped[DropSlowConsumer] += uint64(d)
		}
	}
	switch n.nc.Status() {
	case nats.CONNECTED:
		s.Conn = "connected"
	case nats.CLOSED:
		s.Conn = "closed"
	default:
		s.Conn = "reconnecting"
	}
	return s
}
