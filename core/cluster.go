package core

import (
	"context"

	"github.com/dtcall/dtcall/wire"
)

// A cluster is several cores (nodes) that share presence through their
// Directory and reach one another through Peers. docs/CLUSTER.md has the
// design; in short: a session lives on the node its command connection
// reached (its home). A call between sessions on two nodes exists on both,
// each node holding its own party and a stand-in for the other (a remote
// party); the nodes keep the two halves in step with Signals, sent in
// order per pair of nodes, and media frames travel between them through
// the same drop-oldest queues as local media.

// Location is where a user is online: a node and the session there.
type Location struct {
	// Node is the node's id; "" means this node (so does Peers.Node()).
	Node    string
	Session wire.SessionID
}

// Peers carries a core's signals and media to the other nodes of its
// cluster. Config.Peers nil means a single node. The core calls Signal
// and Media with no lock held; they must not wait for the network for
// long (queue and return).
type Peers interface {
	// Node is this process's node id, unique in the cluster.
	Node() string
	// Signal sends sig to the core of node (its HandleSignal). Signals to
	// one node arrive in the order they were sent, or not at all: a node
	// that cannot be reached is reported lost (NodeLost).
	Signal(node string, sig Signal)
	// Media sends a media frame for the client of session to on node (its
	// DeliverMedia). It may drop frames (a slow or unreachable node); it
	// returns an error when the frame was not sent.
	Media(node string, to wire.SessionID, frame []byte) error
	// MediaFrom sends a frame that the client of session from sent, to
	// from's node (its RelayMedia): the client's media connection reached
	// this node, its command connection node. Drops as Media.
	MediaFrom(node string, from wire.SessionID, frame []byte) error
}

// TryPeers is implemented by Peers that can tell, without waiting, that a
// frame would go out at once (nothing to flush to the network first): the
// relay then sends a cross-node frame from the sender's goroutine, as it
// writes a local one directly (transport.TryWriter), instead of waking
// the remote party's writer for it.
type TryPeers interface {
	// TryMedia sends the frame as Media does if it can now, and reports
	// whether it did; an error means it tried and failed.
	TryMedia(node string, to wire.SessionID, frame []byte) (bool, error)
}

// Resolver is implemented by a clustered Directory whose lookups answer
// from a cache that follows the other nodes a moment late: Resolve asks
// the source itself about user, so that a call to someone who logged in
// on another node a moment ago finds them. The core calls it with no lock
// held, when a lookup found nobody; it may wait on the network (ctx
// bounds it).
type Resolver interface {
	Resolve(ctx context.Context, user string)
}

// SessionLocator is implemented by a clustered Directory: it finds the
// node of a session id, for a legacy media connection that registers on
// another node than its session's (no balancer affinity).
type SessionLocator interface {
	LocateSession(id wire.SessionID) (node string, ok bool)
}

// SignalKind says what a Signal carries.
type SignalKind uint8

// Signal kinds.
const (
	// SigRing asks the callee's node to ring ToUser for FromUser (session
	// From on the sender): the callee's node answers SigRingResult.
	SigRing SignalKind = iota + 1
	// SigRingResult answers a ring: Notice is wire.SubAvailable (the callee
	// rings), wire.SubBusy or wire.SubNotAvailable.
	SigRingResult
	// SigNotice tells the node of session To what its remote party did to
	// the call: Notice is the notice the local party gets, as
	// "kind|sub" of PROTOCOL.md: call|start (answered), call|reject,
	// ring|timeout, call|end (hung up, or left while it rang), call|drop
	// (left an answered call). The receiving node applies it to its half
	// of the call and tells its party.
	SigNotice
	// SigMediaBind asks the node of session To to bind a media connection
	// that registered on the sender: Notice is the connection's source IP
	// (the same-IP rule is checked by the session's node). The answer is
	// SigMediaBound.
	SigMediaBind
	// SigMediaBound answers SigMediaBind: Notice "" (bound; FromUser is
	// the session's user) or the refusal (transport.Refusal's text).
	SigMediaBound
	// SigMediaGone says a split media connection ended: from the node that
	// holds the connection (it closed), or from the session's node (close
	// it: the session ended or registered other media).
	SigMediaGone
	numSignalKinds
)

var signalKindNames = [numSignalKinds]string{"", "ring", "ring_result", "notice", "media_bind", "media_bound", "media_gone"}

func (k SignalKind) String() string {
	if k >= numSignalKinds {
		return "unknown"
	}
	return signalKindNames[k]
}

// Valid reports whether k is a known kind.
func (k SignalKind) Valid() bool { return k > 0 && k < numSignalKinds }

// Signal is one message between the two halves of a cross-node call.
type Signal struct {
	Kind SignalKind
	// Call identifies the call on both nodes; the caller's node draws it.
	Call uint64
	// From and FromUser are the sender's party; To and ToUser the
	// recipient's (To is 0 in a SigRing: the callee's node finds ToUser).
	From     wire.SessionID
	FromUser string
	To       wire.SessionID
	ToUser   string
	// Notice is the result of a ring or the notice of SigNotice.
	Notice string
}
