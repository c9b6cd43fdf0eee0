// Package core is dtcall's heart: sessions, the call state machine and the
// media relay. It knows nothing about sockets: the fronts in transport/ hand
// it framed connections through the interfaces of package transport, so a
// legacy TLS phone and a QUIC client meet here on equal terms.
package core

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/wire"
)

// Accounts answers who exists and checks passwords. accounts.Store
// implements it.
type Accounts interface {
	// Exists reports whether an account of that name exists.
	Exists(name string) bool
	// Authenticate returns nil when password is right for name, for a login
	// from source (the client's address: checks are queued fairly per
	// source). It may block for a costly hash check and must return when
	// ctx ends. An error with a Throttled() bool method that returns true
	// means the password was not checked for load (counted "throttled");
	// any other error is bad credentials.
	Authenticate(ctx context.Context, source netip.Addr, name, password string) error
}

// Bans decides which sources may log in and hears of failed logins: the
// autoban (package accounts/autoban implements it). Its methods must not
// block.
type Bans interface {
	// Allow reports whether a login from addr may go on; false while its
	// source is banned.
	Allow(addr netip.Addr) bool
	// Failed records a failed login from addr: bad credentials, an unknown
	// user, or a malformed command before login.
	Failed(addr netip.Addr)
}

// noBans bans nobody.
type noBans struct{}

func (noBans) Allow(netip.Addr) bool { return true }
func (noBans) Failed(netip.Addr)     {}

// Config tunes the core. Zero values mean the defaults documented per field.
type Config struct {
	// Window is how far a client's timestamp may be from the server clock
	// (replay guard). Default 5 minutes.
	Window time.Duration
	// LoginTimeout bounds the time from a connection's arrival to its login
	// (command) or registration (media). Default 30 s.
	LoginTimeout time.Duration
	// IdleTimeout closes a logged-in connection that sends nothing, not even a
	// keepalive, for this long. Clients send a keepalive every few minutes.
	// Default 10 minutes.
	IdleTimeout time.Duration
	// WriteTimeout bounds each reply write; a client that does not take its
	// replies within it is disconnected. Default 10 s.
	WriteTimeout time.Duration
	// MediaWriteTimeout bounds each media write; a receiver that cannot take
	// media within it loses its media connection. Default 2 s.
	MediaWriteTimeout time.Duration
	// MediaQueue is the number of media chunks queued toward one receiver
	// before the oldest is dropped. Default 32 (0.6 s of 50 frames/s voice).
	MediaQueue int
	// ReplyQueue is the number of replies queued toward one client before it
	// is disconnected as a slow consumer. Default 64.
	ReplyQueue int
	// MediaLossGrace is how long a call survives the loss of one party's
	// media connection before the other party is told call|drop. It lets an
	// "end" sent just before closing the media socket win the race, and a
	// quick re-registration keep the call. Default 300 ms.
	MediaLossGrace time.Duration
	// CommandBurst and CommandRate limit the commands one connection may
	// send (a token bucket, as Mumble's messageburst and messagelimit):
	// CommandBurst at once, then CommandRate a second. Keepalives do not
	// count. A command over the limit is answered invalid; a connection
	// that keeps flooding (floodFactor × CommandBurst refused within
	// floodWindow) is closed. A phone sends a handful of commands per call
	// and scripted test clients about 25 in a second, well under the
	// defaults: a burst of 40, then 10 a second.
	CommandBurst int
	CommandRate  int
	// Directory records who is online where. Default: in memory, this node.
	Directory Directory
	// Peers reaches the other nodes of a cluster (see cluster.go); with it,
	// Directory must be the cluster's. Default nil: a single node.
	Peers Peers
	// Bans is the autoban: a login from a source it refuses is answered
	// invalid at once, without a password check, and failed logins are
	// reported to it. Default: nobody is banned.
	Bans Bans
	// ThrottledPause is how long a connection whose login was throttled
	// (answered invalid at once, unchecked), or which sent a malformed
	// command before login, waits before its next command is read, so that
	// a flood of instantly refused logins cannot spin the server at
	// thousands per second per connection. Default 1 s.
	ThrottledPause time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Window, 5*time.Minute)
	def(&c.LoginTimeout, 30*time.Second)
	def(&c.IdleTimeout, 10*time.Minute)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.MediaWriteTimeout, 2*time.Second)
	def(&c.MediaLossGrace, 300*time.Millisecond)
	def(&c.ThrottledPause, time.Second)
	if c.MediaQueue <= 0 {
		c.MediaQueue = 32
	}
	if c.ReplyQueue <= 0 {
		c.ReplyQueue = 64
	}
	if c.CommandBurst <= 0 {
		c.CommandBurst = 200
	}
	if c.CommandRate <= 0 {
		c.CommandRate = 50
	}
	if c.Directory == nil {
		c.Directory = NewMemoryDirectory()
	}
	if c.Bans == nil {
		c.Bans = noBans{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Server is the core. Its methods are safe for concurrent use. It implements
// transport.Handler.
type Server struct {
	cfg      Config
	log      *slog.Logger
	accounts Accounts
	metrics  metrics
	window   atomic.Int64 // Config.Window in seconds; SetWindow changes it

	// mu guards everything below and the call state of every Session. No
	// I/O happens under it: replies are queued, never written; connections
	// are only marked closed (see gate.go); log lines are queued in logq
	// and written by unlock after it lets go.
	mu       sync.Mutex
	sessions map[wire.SessionID]*Session
	conns    map[transport.Conn]tracked // open connections, marked closed by Shutdown
	calls    int                        // active (answered) calls
	closing  bool                       // draining: no new logins or calls (see drain.go)
	logq     []logLine                  // written by unlock
	outbox   []outSignal                // sent by unlock, in order

	// remoteCalls are the calls with a party on another node, by call id.
	remoteCalls map[uint64]*call
	// remoteIn maps a local session in a cross-node answered call to
	// itself, for DeliverMedia, which must not take mu.
	remoteIn sync.Map
	// binds are the split media registrations of this node waiting for
	// their session's node; shadows the split media connections it holds
	// for sessions of other nodes; splitIn the local sessions whose media
	// connection is on another node, for RelayMedia (see split.go).
	binds   map[wire.SessionID]*pendingBind
	shadows map[wire.SessionID]*Session
	splitIn sync.Map
	// sendMu keeps the signals of successive critical sections in order:
	// unlock takes it before it lets go of mu.
	sendMu sync.Mutex
}

// tracked is an open connection's closed mark and, for a command channel,
// its commandConn (nil for media).
type tracked struct {
	gate *gate
	cmd  *commandConn
}

// logLine is a log record decided under mu, written after mu is released.
type logLine struct {
	log   *slog.Logger
	level slog.Level
	msg   string
	args  []any
}

// logLocked queues a log line for unlock to write. mu must be held.
func (s *Server) logLocked(log *slog.Logger, level slog.Level, msg string, args ...any) {
	s.logq = append(s.logq, logLine{log, level, msg, args})
}

// unlock releases mu, then writes the log lines queued under it, in order.
// A slow log sink slows only the goroutine that unlocks, never the others.
func (s *Server) unlock() {
	q, out := s.logq, s.outbox
	s.logq, s.outbox = nil, nil
	if len(out) == 0 {
		s.mu.Unlock()
	} else {
		s.sendMu.Lock()
		s.mu.Unlock()
		for _, o := range out {
			s.cfg.Peers.Signal(o.node, o.sig)
		}
		s.sendMu.Unlock()
	}
	for _, l := range q {
		l.log.Log(context.Background(), l.level, l.msg, l.args...)
	}
}

var _ transport.Handler = (*Server)(nil)

// ErrClosed is returned for work refused because the server is shutting down.
var ErrClosed = errors.New("server shutting down")

// New returns a core serving the given accounts.
func New(cfg Config, accounts Accounts, log *slog.Logger) *Server {
	cfg.setDefaults()
	s := &Server{
		cfg:         cfg,
		log:         log,
		accounts:    accounts,
		sessions:    make(map[wire.SessionID]*Session),
		conns:       make(map[transport.Conn]tracked),
		remoteCalls: make(map[uint64]*call),
		binds:       make(map[wire.SessionID]*pendingBind),
		shadows:     make(map[wire.SessionID]*Session),
	}
	s.SetWindow(cfg.Window)
	return s
}

// SetWindow changes the replay window (Config.Window) for the commands and
// registrations that follow; a reload calls it.
func (s *Server) SetWindow(d time.Duration) {
	if d > 0 {
		s.window.Store(int64(d / time.Second))
	}
}

// now is the server clock in Unix seconds, as written into replies.
func (s *Server) now() int64 { return s.cfg.Now().Unix() }

// fresh reports whether a client timestamp is within the replay window.
func (s *Server) fresh(ts int64) bool {
	d := s.now() - ts
	w := s.window.Load()
	return d >= -w && d <= w
}

// track records an open connection with its closed mark, and its
// commandConn for a command channel (nil for media), so that Shutdown can
// end it. It refuses connections once the server is closing.
func (s *Server) track(c transport.Conn, g *gate, cc *commandConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = tracked{gate: g, cmd: cc}
	return true
}

func (s *Server) untrack(c transport.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// newSessionIDLocked draws a fresh session id in 1..2^63-1 from crypto/rand.
func (s *Server) newSessionIDLocked() wire.SessionID {
	var b [8]byte
	for range 64 { // a clash is a 2^-63 event; 64 in a row means rand is broken
		rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
		id := wire.SessionID(binary.LittleEndian.Uint64(b[:])) & wire.MaxSessionID
		if _, taken := s.sessions[id]; id != 0 && !taken {
			return id
		}
	}
	panic("core: crypto/rand keeps returning taken session ids")
}
