package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/wire"
)

// Presence: the directory answers from n.local (this node's sessions) and
// n.entries (the bucket as the watcher shows it). Writes to the bucket go
// through n.ops, done in order by workLoop.
//
// One session per user: every login puts the user's key, and the put with
// the higher revision (the later one in the bucket's stream) wins. A node
// that holds a local session for a user and learns of a higher revision
// naming another node ends its session (Core.Superseded). While its own
// put is pending (rev 0) it cannot compare, so it decides when the put
// returns its revision.

type opKind uint8

const (
	opPut opKind = iota + 1
	opDelete
	opSync
)

// op is a bucket write queued for workLoop.
type op struct {
	kind opKind
	user string
	sid  wire.SessionID
	rev  uint64 // opDelete: the revision to delete (0: the one this node put for sid)
}

var bucketConfig = jetstream.KeyValueConfig{
	Bucket:      bucketName,
	Description: "dtcall presence: user -> node and session",
	History:     1,
	Storage:     jetstream.MemoryStorage,
}

// Register records user's session sid on this node and returns the session
// of this node it replaces. It does not block: the bucket put is queued.
func (n *Node) Register(user string, sid wire.SessionID) (wire.SessionID, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	old, ok := n.local[user]
	n.local[user] = &localEntry{sid: sid}
	n.ops.push(op{kind: opPut, user: user, sid: sid})
	if ok {
		return old.sid, true
	}
	return 0, false
}

// Unregister forgets user if its local record names sid, and queues a
// delete of the bucket entry that deletes only this session's revision.
func (n *Node) Unregister(user string, sid wire.SessionID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.local[user]
	if l == nil || l.sid != sid {
		return
	}
	delete(n.local, user)
	n.ops.push(op{kind: opDelete, user: user, sid: sid, rev: l.rev})
}

// Lookup returns where user is online: a session of this node (Node ""),
// or one of another node that is alive. It answers from memory.
func (n *Node) Lookup(user string) (core.Location, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l := n.local[user]; l != nil {
		return core.Location{Session: l.sid}, true
	}
	if e, ok := n.entries[user]; ok && e.Node != n.id && n.aliveLocked(e.Node) {
		return core.Location{Node: e.Node, Session: e.Session}, true
	}
	return core.Location{}, false
}

// Resolve reads user's entry from the bucket itself (core.Resolver), for a
// lookup that found nobody: the watcher may not have delivered a login on
// another node of a moment ago. A newer entry than the cache's is applied
// as the watcher will apply it.
func (n *Node) Resolve(ctx context.Context, user string) {
	n.mu.Lock()
	kv, gen := n.bucket, n.watchGen
	ok := n.synced && n.connected
	n.mu.Unlock()
	if !ok || kv == nil {
		return
	}
	e, err := kv.Get(ctx, userKey(user))
	if err != nil {
		return // not found (offline), or the bucket cannot answer now
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if cur, seen := n.entries[user]; n.watchGen == gen && (!seen || cur.rev < e.Revision()) {
		n.applyLocked(e)
	}
}

// LocateSession returns the node of session id (core.SessionLocator): ""
// for this node's, the node id for another live node's.
func (n *Node) LocateSession(id wire.SessionID) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.local {
		if l.sid == id {
			return "", true
		}
	}
	for _, e := range n.entries {
		if e.Session == id && e.Node != n.id && n.aliveLocked(e.Node) {
			return e.Node, true
		}
	}
	return "", false
}

func (n *Node) queueSyncLocked() {
	if !n.syncQueued {
		n.syncQueued = true
		n.ops.push(op{kind: opSync})
	}
}

// supersedeLocked ends the local session of user: another node's login is newer.
func (n *Node) supersedeLocked(user string, l *localEntry) {
	delete(n.local, user)
	n.stats.superseded.Add(1)
	sid := l.sid
	n.events.push(func(c Core) { c.Superseded(sid) })
}

// workLoop does the bucket writes in order. It owns n.kv and the watcher.
func (n *Node) workLoop() {
	defer n.wg.Done()
	putRevs := make(map[string]localEntry) // user → the last session this node put, and its revision
	defer n.stopWatcher()
	for {
		select {
		case <-n.stop:
			return
		case <-n.ops.ready:
		}
		ops := n.ops.take()
		for len(ops) > 0 {
			select {
			case <-n.stop:
				return
			default:
			}
			// Puts in a row go out together: a login storm must not wait
			// for one round trip to JetStream per login (see putAll).
			k := 0
			for k < len(ops) && ops[k].kind == opPut {
				k++
			}
			if k > 1 {
				n.putAll(ops[:k], putRevs)
				ops = ops[k:]
				continue
			}
			n.do(ops[0], putRevs)
			ops = ops[1:]
		}
	}
}

// putAll publishes the puts at once, as a KeyValue.Put would each (a
// message on the bucket's subject for the key), then takes their
// acknowledgements in order: the revision of each is its stream sequence.
// JetStream keeps the order of one connection's publishes, so a later op
// on the same user still comes after.
func (n *Node) putAll(ops []op, putRevs map[string]localEntry) {
	if !n.ready() {
		return // the next sync puts them
	}
	futs := make([]jetstream.PubAckFuture, 0, len(ops))
	for _, o := range ops {
		f, err := n.js.PublishAsync(kvSubjectPrefix+userKey(o.user), encodePresence(presence{Node: n.id, Session: o.sid}))
		if err != nil {
			n.failed("put", err)
			break
		}
		futs = append(futs, f)
	}
	timeout := time.NewTimer(opTimeout)
	defer timeout.Stop()
	for i, f := range futs {
		select {
		case ack := <-f.Ok():
			n.putDone(ops[i], ack.Sequence, putRevs)
		case err := <-f.Err():
			n.failed("put", err)
		case <-timeout.C:
			n.failed("put", context.DeadlineExceeded)
			return
		case <-n.stop:
			return
		}
	}
}

// kvSubjectPrefix is the subject prefix of the bucket's keys (JetStream's
// key-value convention, "$KV.<bucket>.<key>").
const kvSubjectPrefix = "$KV." + bucketName + "."

func (n *Node) do(o op, putRevs map[string]localEntry) {
	switch o.kind {
	case opSync:
		n.sync()
	case opPut:
		n.put(o, putRevs)
	case opDelete:
		n.del(o, putRevs)
	}
}

// ready reports whether bucket writes can be tried now.
func (n *Node) ready() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.synced && n.connected && n.kv != nil
}

// failed notes a failed bucket write: the next liveness tick syncs again,
// which re-puts every local entry.
func (n *Node) failed(what string, err error) {
	n.stats.presenceErrors.Add(1)
	n.mu.Lock()
	n.synced = false
	logIt := n.logFails
	n.logFails = false
	n.mu.Unlock()
	if logIt {
		n.log.Warn("presence bucket", "op", what, "err", err)
	}
}

func (n *Node) put(o op, putRevs map[string]localEntry) {
	if !n.ready() {
		return // the next sync puts it
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	rev, err := n.kv.Put(ctx, userKey(o.user), encodePresence(presence{Node: n.id, Session: o.sid}))
	if err != nil {
		n.failed("put", err)
		return
	}
	n.putDone(o, rev, putRevs)
}

// putDone records the revision of a put of this node's entry, and ends
// the session at once if the bucket already holds a newer login of the
// user from another node.
func (n *Node) putDone(o op, rev uint64, putRevs map[string]localEntry) {
	n.stats.presencePuts.Add(1)
	putRevs[o.user] = localEntry{sid: o.sid, rev: rev}
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.local[o.user]
	if l == nil || l.sid != o.sid {
		return // unregistered or replaced meanwhile; their ops follow
	}
	l.rev = rev
	if e, ok := n.entries[o.user]; ok && e.Node != n.id && e.rev > rev {
		n.supersedeLocked(o.user, l)
	}
}

func (n *Node) del(o op, putRevs map[string]localEntry) {
	rev := o.rev
	if p, ok := putRevs[o.user]; ok && p.sid == o.sid {
		if rev == 0 {
			rev = p.rev
		}
		delete(putRevs, o.user)
	}
	if rev == 0 || !n.ready() {
		return // never put; or the watcher finds it later (applyLocked)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	err := n.kv.Delete(ctx, userKey(o.user), jetstream.LastRevision(rev))
	switch {
	case err == nil:
		n.stats.presenceDeletes.Add(1)
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
		// A newer revision (another login) or already gone: nothing to do.
	default:
		n.failed("delete", err)
	}
}

// sync binds (or creates) the bucket, restarts the watcher, and queues a
// put of every local entry. On failure the next liveness tick tries again.
func (n *Node) sync() {
	n.mu.Lock()
	n.syncQueued = false
	connected := n.connected
	n.mu.Unlock()
	if !connected {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	kv, err := n.js.CreateKeyValue(ctx, bucketConfig)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = n.js.KeyValue(ctx, bucketName)
	}
	if err != nil {
		n.failed("bind bucket", err)
		return
	}
	n.stopWatcher()
	wctx, wcancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		wcancel()
		n.failed("watch", err)
		return
	}
	n.kv, n.watcher, n.watchCancel = kv, w, wcancel
	n.mu.Lock()
	n.bucket = kv
	n.watchGen++
	gen := n.watchGen
	clear(n.entries)
	n.synced = true
	n.logFails = true
	for user, l := range n.local {
		l.rev = 0
		n.ops.push(op{kind: opPut, user: user, sid: l.sid})
	}
	n.mu.Unlock()
	n.wg.Add(1)
	go n.watchLoop(w, gen)
}

func (n *Node) stopWatcher() {
	if n.watcher != nil {
		n.watcher.Stop()
		n.watchCancel() // ends the goroutine jetstream keeps for the context
		n.watcher, n.watchCancel = nil, nil
	}
}

// watchLoop applies the watcher's entries to n.entries until the watcher
// is stopped (sync or Close) or the connection closes.
func (n *Node) watchLoop(w jetstream.KeyWatcher, gen uint64) {
	defer n.wg.Done()
	for e := range w.Updates() {
		n.mu.Lock()
		if gen != n.watchGen {
			n.mu.Unlock()
			return
		}
		if e == nil { // the replay of the current state is complete
			n.upSince = time.Now()
		} else {
			n.applyLocked(e)
		}
		n.mu.Unlock()
	}
}

// applyLocked takes one change of the bucket into n.entries and acts on it.
func (n *Node) applyLocked(e jetstream.KeyValueEntry) {
	user, ok := keyUser(e.Key())
	if !ok {
		return
	}
	rev := e.Revision()
	if e.Operation() != jetstream.KeyValuePut {
		delete(n.entries, user)
		// Someone else deleted this node's confirmed entry (it was taken
		// for dead): put it again.
		if l := n.local[user]; l != nil && l.rev != 0 && rev > l.rev {
			l.rev = 0
			n.ops.push(op{kind: opPut, user: user, sid: l.sid})
		}
		return
	}
	p, err := decodePresence(e.Value())
	if err != nil {
		return
	}
	n.entries[user] = entry{presence: p, rev: rev, seen: time.Now()}
	l := n.local[user]
	if p.Node == n.id {
		if l == nil || l.sid != p.Session {
			// A session of ours that ended while its put was pending or
			// while disconnected.
			n.ops.push(op{kind: opDelete, user: user, sid: p.Session, rev: rev})
		}
		return
	}
	if l != nil && l.rev != 0 && rev > l.rev {
		n.supersedeLocked(user, l)
	}
}
