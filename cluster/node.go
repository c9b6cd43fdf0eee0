// Package cluster shares presence between dtcall nodes and carries their
// signals and media, through NATS. A *Node is the core's core.Directory
// and core.Peers; it calls the core back through Core.
//
// Presence lives in the JetStream key-value bucket dtcall_presence (one
// key per user, naming a node and a session), liveness in heartbeats on
// core NATS, and each node keeps a local copy of both so that the
// Directory methods answer from memory. format.go has the subjects and
// the byte layouts.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/wire"
)

// Core is what a Node tells its core (core.Server implements it). A Node
// calls HandleSignal, Superseded and NodeLost from one goroutine, in the
// order the events happened, and DeliverMedia from the media
// subscription's goroutine; never with a lock that the Directory methods
// take.
type Core interface {
	HandleSignal(from string, sig core.Signal)    // a signal from node `from`
	DeliverMedia(to wire.SessionID, frame []byte) // a frame for local session `to`'s client
	RelayMedia(from wire.SessionID, frame []byte) // a frame local session `from`'s client sent through another node
	Superseded(sid wire.SessionID)                // local session sid's user logged in on another node: end it
	NodeLost(node string)                         // node is gone (dead or unreachable): end calls with it
}

var (
	_ core.Directory      = (*Node)(nil)
	_ core.Peers          = (*Node)(nil)
	_ core.SessionLocator = (*Node)(nil)
	_ core.TryPeers       = (*Node)(nil)
	_ core.Resolver       = (*Node)(nil)
	_ Core                = (*core.Server)(nil)
)

// Config configures a Node.
type Config struct {
	URLs           string // comma-separated NATS URLs (nats://host:port, tls://...)
	Name           string // the node's name (setting `node`), default os.Hostname()
	CredsFile      string // NATS credentials file (nats.UserCredentials), optional
	User, Password string // optional; never logged (also taken from a URL's user info)
	CAFile         string // CA for a TLS NATS connection, optional (nats.RootCAs)
	CertFile       string // client certificate for mutual TLS, optional (with KeyFile)
	KeyFile        string
	Heartbeat      time.Duration // how often a node announces itself; default 250ms
	NodeTimeout    time.Duration // a node not heard from for this long is lost; default 1500ms
	Log            *slog.Logger
}

// Defaults.
const (
	DefaultHeartbeat   = 250 * time.Millisecond
	DefaultNodeTimeout = 1500 * time.Millisecond

	opTimeout     = 2 * time.Second // one key-value operation
	closeTimeout  = time.Second     // Close's deletes and flush, in all
	mediaPendMsgs = 2048            // media subscription's pending limits
	mediaPendSize = 2 << 20
)

// Errors of Media.
var (
	ErrNoConnection = errors.New("cluster: not connected to NATS")
	ErrNodeLost     = errors.New("cluster: node not alive")
)

// Drop reasons, the keys of Stats.MediaDropped and Stats.SignalsDropped.
const (
	DropSlowConsumer = "slow_consumer"
	DropNoConnection = "no_connection"
	DropLostNode     = "lost_node"
)

// Node is one dtcall process's member of the cluster. Its methods are safe
// for concurrent use. The Directory methods (Register, Unregister, Lookup)
// never block on the network.
type Node struct {
	id   string
	cfg  Config
	log  *slog.Logger
	nc   *nats.Conn
	urls string // the server URLs without user info, for logs

	core   Core   // set by Start, read-only after
	hbSubj string // dtcall.hb.<id>
	sigSub *nats.Subscription
	hbSub  *nats.Subscription
	medSub *nats.Subscription
	medPfx string // dtcall.media.<id>.
	// fromSub receives the frames that clients of this node's sessions
	// sent through media connections held by other nodes (split legacy
	// connections, see core/split.go).
	fromSub *nats.Subscription
	fromPfx string // dtcall.mfrom.<id>.

	events *fifo[func(Core)] // drained by dispatchLoop
	ops    *fifo[op]         // drained by workLoop

	// Owned by workLoop (and by Close once workLoop has returned).
	js          jetstream.JetStream
	kv          jetstream.KeyValue
	watcher     jetstream.KeyWatcher
	watchCancel context.CancelFunc

	stop chan struct{} // closed by Close
	wg   sync.WaitGroup

	mu sync.Mutex
	// guarded by mu:
	started, closed bool
	connected       bool
	synced          bool               // the bucket is bound and the watcher replays it
	syncQueued      bool               // an opSync waits in ops
	upSince         time.Time          // when the current watcher finished its replay (zero: not yet)
	watchGen        uint64             // the current watcher; older ones' entries are ignored
	bucket          jetstream.KeyValue // n.kv, for Resolve's reads from other goroutines
	local           map[string]*localEntry
	entries         map[string]entry // the bucket as the watcher shows it, by user
	nodes           map[string]*peer // other nodes heard from since the last (re)connect
	lostAt          map[string]time.Time
	logFails        bool   // log the next failure of a bucket operation
	lastURL         string // the server last connected to (redacted), for logs

	stats counters
}

// localEntry is a session of this node in the directory.
type localEntry struct {
	sid wire.SessionID
	rev uint64 // the revision of its put; 0 while the put is pending
}

// entry is a user's value in the bucket.
type entry struct {
	presence
	rev      uint64
	seen     time.Time // when the watcher delivered it
	cleaning bool      // a delete of this revision is queued (stale entry)
}

// peer is another node as heard from.
type peer struct {
	last  time.Time
	alive bool
}

type counters struct {
	sigSent, sigRecv, sigBad       atomic.Uint64
	sigDropConn, sigDropLost       atomic.Uint64
	medSent, medSentBytes          atomic.Uint64
	medRecv, medRecvBytes          atomic.Uint64
	medDropConn, medDropLost       atomic.Uint64
	slowConsumerEvents, reconnects atomic.Uint64
	presencePuts, presenceDeletes  atomic.Uint64
	presenceErrors, superseded     atomic.Uint64
	nodesLost                      atomic.Uint64
}

// New validates cfg and connects to NATS. It succeeds while NATS is down:
// the connection keeps trying in the background. The node serves nothing
// until Start.
func New(cfg Config) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	urls, user, pass, err := splitURLs(cfg.URLs)
	if err != nil {
		return nil, err
	}
	if cfg.User == "" && user != "" {
		cfg.User, cfg.Password = user, pass
	}
	n := &Node{
		id:       cfg.Name + "-" + randomHex(3),
		cfg:      cfg,
		urls:     urls,
		events:   newFIFO[func(Core)](),
		ops:      newFIFO[op](),
		stop:     make(chan struct{}),
		local:    make(map[string]*localEntry),
		entries:  make(map[string]entry),
		nodes:    make(map[string]*peer),
		lostAt:   make(map[string]time.Time),
		logFails: true,
	}
	n.log = cfg.Log.With("node", n.id)
	n.hbSubj = hbPrefix + n.id
	n.medPfx = mediaPrefix + n.id + "."
	n.fromPfx = fromPrefix + n.id + "."
	n.nc, err = nats.Connect(urls, n.natsOptions()...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to %s: %w", urls, err)
	}
	if n.js, err = jetstream.New(n.nc); err != nil {
		n.nc.Close()
		return nil, fmt.Errorf("cluster: jetstream: %w", err)
	}
	return n, nil
}

func (c *Config) setDefaults() error {
	if strings.TrimSpace(c.URLs) == "" {
		return errors.New("cluster: no NATS URLs")
	}
	if c.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("cluster: node name: %w", err)
		}
		c.Name = h
	}
	c.Name = sanitizeName(c.Name)
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("cluster: a client certificate needs both CertFile and KeyFile")
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.NodeTimeout == 0 {
		c.NodeTimeout = DefaultNodeTimeout
	}
	if c.Heartbeat < 0 || c.NodeTimeout < 2*c.Heartbeat {
		return fmt.Errorf("cluster: node timeout %v must be at least twice the heartbeat %v", c.NodeTimeout, c.Heartbeat)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// splitURLs returns the URLs without user info (so that no log line and no
// error can carry a password), and the first user info found.
func splitURLs(s string) (urls, user, pass string, err error) {
	var out []string
	for raw := range strings.SplitSeq(s, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		if !strings.Contains(raw, "://") {
			raw = "nats://" + raw
		}
		u, perr := url.Parse(raw)
		if perr != nil || u.Host == "" {
			return "", "", "", errors.New("cluster: malformed NATS URL") // perr may quote a password
		}
		if u.User != nil && user == "" {
			user = u.User.Username()
			pass, _ = u.User.Password()
		}
		u.User = nil
		out = append(out, u.String())
	}
	if len(out) == 0 {
		return "", "", "", errors.New("cluster: no NATS URLs")
	}
	return strings.Join(out, ","), user, pass, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

func (n *Node) natsOptions() []nats.Option {
	opts := []nats.Option{
		nats.Name("dtcall " + n.id),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, 500*time.Millisecond),
		nats.Timeout(time.Second),
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(2),
		// Nothing is buffered while disconnected: a signal or frame sent
		// then would arrive after its call ended. Publishes fail instead.
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(n.onConnect),
		nats.ReconnectHandler(n.onReconnect),
		nats.DisconnectErrHandler(n.onDisconnect),
		nats.ClosedHandler(n.onClosed),
		nats.ErrorHandler(n.onAsyncError),
	}
	c := n.cfg
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.CAFile != "" {
		opts = append(opts, nats.RootCAs(c.CAFile))
	}
	if c.CertFile != "" {
		opts = append(opts, nats.ClientCert(c.CertFile, c.KeyFile))
	}
	return opts
}

// Node returns this node's id: the configured name, "-", 6 random hex digits.
func (n *Node) Node() string { return n.id }

// Start subscribes, starts heartbeats, and binds the presence bucket as
// soon as NATS is reachable. c receives the node's callbacks. Start may be
// called once.
func (n *Node) Start(c Core) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started || n.closed {
		return errors.New("cluster: Start called twice or after Close")
	}
	n.core = c
	var err error
	if n.hbSub, err = n.nc.Subscribe(hbPrefix+"*", n.onHeartbeat); err != nil {
		return fmt.Errorf("cluster: subscribe heartbeats: %w", err)
	}
	if n.sigSub, err = n.nc.Subscribe(sigPrefix+n.id, n.onSignal); err != nil {
		return fmt.Errorf("cluster: subscribe signals: %w", err)
	}
	// Signals are never dropped: the callback only queues them.
	n.sigSub.SetPendingLimits(-1, -1)
	if n.medSub, err = n.nc.Subscribe(n.medPfx+"*", n.mediaHandler(n.medPfx, c.DeliverMedia)); err != nil {
		return fmt.Errorf("cluster: subscribe media: %w", err)
	}
	n.medSub.SetPendingLimits(mediaPendMsgs, mediaPendSize)
	if n.fromSub, err = n.nc.Subscribe(n.fromPfx+"*", n.mediaHandler(n.fromPfx, c.RelayMedia)); err != nil {
		return fmt.Errorf("cluster: subscribe media: %w", err)
	}
	n.fromSub.SetPendingLimits(mediaPendMsgs, mediaPendSize)
	n.started = true
	n.connected = n.nc.IsConnected()
	if n.connected {
		n.queueSyncLocked()
	}
	n.wg.Add(4)
	go n.dispatchLoop()
	go n.workLoop()
	go n.heartbeatLoop()
	go n.livenessLoop()
	return nil
}

// dispatchLoop calls the core with the queued events, in order.
func (n *Node) dispatchLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case <-n.events.ready:
		}
		for _, ev := range n.events.take() {
			select {
			case <-n.stop:
				return
			default:
			}
			ev(n.core)
		}
	}
}

// Abort cuts the connection to NATS without a word to the other nodes (no
// bye, presence entries left behind), as a crash would: they find out
// from the missing heartbeats. Close still releases the rest. It exists
// for tests of node loss inside one process.
func (n *Node) Abort() {
	n.nc.Close()
}

// Close announces the departure to the other nodes, deletes this node's
// presence entries, and closes the connection. It waits for the node's
// goroutines (at most about a second for the network part) and is
// idempotent. The core gets no callback after Close returns, except
// perhaps a media frame that was being delivered.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	started := n.started
	n.mu.Unlock()
	close(n.stop)
	n.wg.Wait() // workLoop stopped the watcher; kv is Close's now
	if started && n.nc.IsConnected() {
		n.nc.Publish(n.hbSubj, []byte(byePayload))
		n.deleteOwnEntries()
		n.nc.FlushTimeout(closeTimeout)
	}
	n.nc.Close()
	return nil
}

// deleteOwnEntries deletes the bucket entries naming this node, each only
// if it is still the revision this node wrote.
func (n *Node) deleteOwnEntries() {
	if n.kv == nil {
		return
	}
	n.mu.Lock()
	revs := make(map[string]uint64)
	for user, l := range n.local {
		if l.rev != 0 {
			revs[user] = l.rev
		}
	}
	for user, e := range n.entries {
		if e.Node == n.id {
			revs[user] = max(revs[user], e.rev)
		}
	}
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	for user, rev := range revs {
		if n.kv.Delete(ctx, userKey(user), jetstream.LastRevision(rev)) == nil {
			n.stats.presenceDeletes.Add(1)
		}
		if ctx.Err() != nil {
			return
		}
	}
}
