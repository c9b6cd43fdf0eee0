package cluster

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/wire"
)

// Signals to one node keep their order: this node publishes them all on
// its one connection, the receiver reads them from its one subscription,
// and NATS delivers the messages of one publisher connection to one
// subscription in the order they were published. The receiver queues them
// for dispatchLoop, which hands them to the core one at a time.

// reachable says why node cannot be sent to now ("" if it can).
func (n *Node) reachable(node string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case !n.connected || n.closed:
		return DropNoConnection
	case !n.aliveLocked(node):
		return DropLostNode
	}
	return ""
}

// Signal sends sig to node's core. It does not block: NATS buffers the
// publish. A signal to a node that is not alive, or while disconnected, is
// dropped (counted): that node is, or is about to be, reported lost.
func (n *Node) Signal(node string, sig core.Signal) {
	if !validSignal(n.id, sig) {
		n.stats.sigBad.Add(1)
		n.log.Error("signal not sent: invalid", "peer", node, "kind", sig.Kind)
		return
	}
	reason := n.reachable(node)
	if reason == "" && n.nc.Publish(sigPrefix+node, encodeSignal(n.id, sig)) != nil {
		reason = DropNoConnection
	}
	switch reason {
	case "":
		n.stats.sigSent.Add(1)
	case DropLostNode:
		n.stats.sigDropLost.Add(1)
	default:
		n.stats.sigDropConn.Add(1)
	}
}

// onSignal receives a signal for this node: its sender is heard (alive),
// and the signal is queued for the core.
func (n *Node) onSignal(m *nats.Msg) {
	from, sig, err := decodeSignal(m.Data)
	if err != nil || from == n.id {
		n.stats.sigBad.Add(1)
		return
	}
	n.stats.sigRecv.Add(1)
	n.mu.Lock()
	up, wasLost := false, false
	if n.connected && !n.closed {
		up, wasLost = n.heardLocked(from, time.Now())
	}
	n.events.push(func(c Core) { c.HandleSignal(from, sig) })
	n.mu.Unlock()
	if wasLost {
		n.tellLost(from)
	}
	if up {
		n.log.Info("node up", "peer", from)
	}
}

// Media sends frame to the client of session to on node. It does not
// block; it returns ErrNoConnection or ErrNodeLost when the frame was
// dropped. frame may be reused once Media returns (NATS copies it).
func (n *Node) Media(node string, to wire.SessionID, frame []byte) error {
	return n.publishMedia(mediaPrefix, node, to, frame)
}

// TryMedia sends frame as Media does if that cannot wait on the network:
// the connection's write buffer has room for it, so nats.go will not
// flush to the socket from this goroutine (core.TryPeers). Publishes of
// other goroutines in between may still make it flush, which then is a
// write into a socket that has been keeping up.
func (n *Node) TryMedia(node string, to wire.SessionID, frame []byte) (bool, error) {
	if b, err := n.nc.Buffered(); err != nil || b+len(frame)+tryHeadroom > nats.DefaultWriteBufSize {
		return false, nil
	}
	return true, n.Media(node, to, frame)
}

// tryHeadroom is what a media message's protocol line may add to its frame
// in the write buffer: "PUB dtcall.media.<id>.<sid> <size>\r\n" and the
// final "\r\n".
const tryHeadroom = 128

// MediaFrom sends a frame that the client of session from sent through a
// media connection of this node, to from's node (core.Peers). It drops as
// Media does.
func (n *Node) MediaFrom(node string, from wire.SessionID, frame []byte) error {
	return n.publishMedia(fromPrefix, node, from, frame)
}

func (n *Node) publishMedia(prefix, node string, sid wire.SessionID, frame []byte) error {
	reason := n.reachable(node)
	if reason == "" {
		subj := prefix + node + "." + strconv.FormatUint(uint64(sid), 10)
		if n.nc.Publish(subj, frame) != nil {
			reason = DropNoConnection
		}
	}
	switch reason {
	case "":
		n.stats.medSent.Add(1)
		n.stats.medSentBytes.Add(uint64(len(frame)))
		return nil
	case DropLostNode:
		n.stats.medDropLost.Add(1)
		return ErrNodeLost
	default:
		n.stats.medDropConn.Add(1)
		return ErrNoConnection
	}
}

// mediaHandler returns the callback of a media subscription whose
// subjects are prefix followed by a session id: it hands each frame to
// deliver (the core's DeliverMedia or RelayMedia), on the subscription's
// goroutine. A core that stalls there makes frames pile up in the
// subscription, up to its pending limits; beyond them NATS drops them
// (counted as slow_consumer), so no more than about 2048 frames (40 s of
// one call's 20 ms frames, well under a second of 100 calls') wait.
func (n *Node) mediaHandler(prefix string, deliver func(wire.SessionID, []byte)) nats.MsgHandler {
	return func(m *nats.Msg) {
		sid, ok := parseMediaSubject(m.Subject, prefix)
		if !ok {
			return
		}
		n.stats.medRecv.Add(1)
		n.stats.medRecvBytes.Add(uint64(len(m.Data)))
		deliver(sid, m.Data)
	}
}
