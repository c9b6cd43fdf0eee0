// Package quic is the QUIC front for new clients (PROTOCOL.md section 6):
// one QUIC connection per client, its first bidirectional stream carrying
// the commands and replies of the legacy protocol as lines, later streams
// registering media in stream mode or datagram mode. It adapts quic-go
// connections to the interfaces of package transport; the core cannot tell a
// QUIC client from a legacy one.
package quic

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/transport"
)

// ALPN is the application protocol token; a client offering no known token
// is refused during the handshake.
const ALPN = "dtcall/1"

// Application error codes for closing a whole connection. Stream-level
// refusals use transport.Refusal.
const (
	codeClosed       quicgo.ApplicationErrorCode = 0     // the client left or was logged out
	codeNoCommand    quicgo.ApplicationErrorCode = 0x201 // no command stream in time
	codeShuttingDown quicgo.ApplicationErrorCode = 0x202 // the server is stopping
)

// Config configures the QUIC front.
type Config struct {
	// CertFile and KeyFile are the server's PEM certificate and key, the
	// same as the legacy front's.
	CertFile, KeyFile string
	// KeepAlive is how often the server sends a keep-alive on an idle
	// connection. Mobile NATs drop idle UDP mappings after about 30 s.
	// Default 15 s.
	KeepAlive time.Duration
	// IdleTimeout closes a connection that has heard nothing for this long
	// (the client's keep-alives count). Default 60 s.
	IdleTimeout time.Duration
	// HandshakeTimeout bounds the handshake and the wait for the command
	// stream. Default 10 s.
	HandshakeTimeout time.Duration
	// CallLiveness closes a connection in an answered call from which
	// nothing at all (not even an acknowledgement of the server's probes)
	// arrived for this long, so that its partner is told call|drop within
	// seconds of a client vanishing. Default 1.5 s.
	CallLiveness time.Duration

	// MaxConnsPerSource bounds the QUIC connections from one source (an
	// IPv4 address, or an IPv6 /64), handshaking ones included. A client
	// needs one (two for a moment when it logs in again); a few phones
	// behind one NAT need one each. Attempts beyond it are refused before
	// their handshake (CONNECTION_REFUSED). Default 16.
	MaxConnsPerSource int
	// MaxConns bounds the QUIC connections in all, refused the same way.
	// An idle connection that has not logged in holds about 100 KiB of
	// RSS (docs/reliability/quic.md), so the default keeps what idle
	// attackers can hold to about 2 GiB. Default 20000.
	MaxConns int
	// MaxStreams is how many bidirectional streams a client may have open
	// at once: the command stream, its media stream, and a new media
	// stream while the old one is being replaced. Unidirectional streams
	// are not part of the protocol: a client may open none. Default 4.
	MaxStreams int
	// ReceiveWindow is the flow-control window of each stream at first, and
	// of the whole connection until it has logged in: how much a client
	// that has not logged in can make the server buffer. Commands are
	// lines of at most 1 KiB, voice is 1.6 KB/s, and 8 KiB a round trip
	// carries 27 KB/s even over 300 ms. Default 8 KiB.
	ReceiveWindow int
	// MaxReceiveWindow is how far quic-go may grow the connection's window
	// once the client has logged in (a stream's grows to half of it).
	// Default 128 KiB.
	MaxReceiveWindow int
	// Gate, if set, is asked about each connection attempt before its
	// handshake; one it refuses gets CONNECTION_REFUSED. Autoban sets it.
	Gate transport.Gate
	// ConnectionIDGenerator, if set, issues the server's connection IDs
	// (quic-go's Transport.ConnectionIDGenerator), so that packets can be
	// steered by them: a restart on the same port (SO_REUSEPORT) sends each
	// connection's packets to the process that owns it. nil: quic-go's
	// random 4-byte IDs.
	ConnectionIDGenerator quicgo.ConnectionIDGenerator
}

func (c *Config) setDefaults() {
	if c.KeepAlive <= 0 {
		c.KeepAlive = 15 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.CallLiveness <= 0 {
		c.CallLiveness = 1500 * time.Millisecond
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxConnsPerSource, 16)
	def(&c.MaxConns, 20000)
	def(&c.MaxStreams, 4)
	def(&c.ReceiveWindow, 8<<10)
	def(&c.MaxReceiveWindow, 128<<10)
	c.MaxReceiveWindow = max(c.MaxReceiveWindow, c.ReceiveWindow)
}

// Server runs QUIC listeners. Its methods are safe for concurrent use.
type Server struct {
	handler   transport.Handler
	log       *slog.Logger
	tls       *tls.Config
	quic      *quicgo.Config
	handshake time.Duration
	// callLiveness is Config.CallLiveness (see commandStream.Probe).
	callLiveness time.Duration

	ctx    context.Context // cancelled by Close; parent of every connection's
	cancel context.CancelFunc
	// wg counts the accept loops, the connection goroutines and the
	// reclaimer; Add happens under mu, while closed is false (see goLocked).
	wg sync.WaitGroup

	gate    transport.Gate               // nil: everyone may connect
	cids    quicgo.ConnectionIDGenerator // nil: quic-go's
	admit   *admission
	reclaim chan struct{} // wakes reclaimLoop; see admission.put
	// slots holds a token for each connection between the end of its
	// handshake and the accept loop (see awaitSlot); its capacity is
	// acceptSlots.
	slots chan struct{}
	// slotTimeouts counts handshakes that found no slot within slotWait.
	slotTimeouts atomic.Int64
	// acceptHookForTest, if set, runs before each Accept (tests stall the
	// accept loop with it).
	acceptHookForTest atomic.Pointer[func()]
	// refused counts connection attempts refused before their handshake, by
	// reason (refusalReasons).
	refused [len(refusalReasons)]atomic.Int64

	// datagramsDropped counts received datagrams dropped because the relay
	// lagged behind (see dgramQueue).
	datagramsDropped atomic.Int64
	// readBuffers counts the read buffers streams have borrowed
	// (lazyread.go).
	readBuffers atomic.Int64
	// handshakes counts handshakes by outcome: ok, failed, timeout.
	handshakes [3]atomic.Int64

	cert     atomic.Pointer[tls.Certificate] // served; replaced by Reload
	draining atomic.Bool                     // set with closed, for the streams' writes

	mu         sync.Mutex
	transports map[*quicgo.Transport]struct{}
	listeners  map[*quicgo.Listener]struct{}
	closed     bool
	// lingering are the draining closes waiting for closeLinger (see
	// closeConn); lingerUntil is when the last of them fires.
	lingering   map[*quicgo.Conn]*time.Timer
	lingerUntil time.Time
	reclaiming  bool // reclaimLoop runs
}

// New loads the certificate and prepares the QUIC and TLS configuration.
func New(cfg Config, h transport.Handler, log *slog.Logger) (*Server, error) {
	cfg.setDefaults()
	cert, err := loadCertificate(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	s := &Server{
		handler: h,
		log:     log,
		tls: &tls.Config{
			MinVersion: tls.VersionTLS13,
			NextProtos: []string{ALPN},
		},
		quic: &quicgo.Config{
			HandshakeIdleTimeout:           cfg.HandshakeTimeout,
			MaxIdleTimeout:                 cfg.IdleTimeout,
			KeepAlivePeriod:                cfg.KeepAlive,
			EnableDatagrams:                true,
			MaxIncomingStreams:             int64(cfg.MaxStreams),
			MaxIncomingUniStreams:          -1, // quic-go: negative means none
			InitialStreamReceiveWindow:     uint64(cfg.ReceiveWindow),
			MaxStreamReceiveWindow:         uint64(max(cfg.MaxReceiveWindow/2, cfg.ReceiveWindow)),
			InitialConnectionReceiveWindow: uint64(cfg.ReceiveWindow),
			MaxConnectionReceiveWindow:     uint64(cfg.MaxReceiveWindow),
			AllowConnectionWindowIncrease:  allowWindowIncrease,
		},
		handshake:    cfg.HandshakeTimeout,
		callLiveness: cfg.CallLiveness,
		gate:         cfg.Gate,
		cids:         cfg.ConnectionIDGenerator,
		admit:        newAdmission(cfg.MaxConnsPerSource, cfg.MaxConns),
		reclaim:      make(chan struct{}, 1),
		slots:        make(chan struct{}, acceptSlots),
		transports:   make(map[*quicgo.Transport]struct{}),
		listeners:    make(map[*quicgo.Listener]struct{}),
		lingering:    make(map[*quicgo.Conn]*time.Timer),
	}
	s.cert.Store(cert)
	s.tls.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil }
	s.tls.GetConfigForClient = s.configForClient
	// Make the session ticket keys now, so that configForClient's clones
	// share them (quic-go does the same for its own clone).
	_, _ = s.tls.DecryptTicket(nil, tls.ConnectionState{})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func loadCertificate(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s / key %s: %w", certFile, keyFile, err)
	}
	return &cert, nil
}

// Reload loads the certificate and key again (operators replace the files
// in place when a certificate renews) and serves them to later
// handshakes; connections keep theirs. On error nothing changes.
func (s *Server) Reload(certFile, keyFile string) error {
	cert, err := loadCertificate(certFile, keyFile)
	if err != nil {
		return err
	}
	s.cert.Store(cert)
	return nil
}

// Serve accepts QUIC connections on pc until pc or the server is closed.
// pc is closed when Serve returns. It returns nil once the server closes
// (CloseListeners or Close), and the error otherwise: the socket failed.
func (s *Server) Serve(pc net.PacketConn) error {
	tr := &quicgo.Transport{Conn: pc, ConnContext: s.connContext, ConnectionIDGenerator: s.cids}
	ln, err := tr.Listen(s.tls, s.quic)
	if err != nil {
		tr.Close()
		pc.Close()
		return fmt.Errorf("quic listen: %w", err)
	}
	if !s.add(tr, ln) {
		ln.Close()
		tr.Close()
		pc.Close()
		return net.ErrClosed
	}
	defer s.wg.Done() // add counted this loop
	defer ln.Close()
	for {
		if f := s.acceptHookForTest.Load(); f != nil {
			(*f)()
		}
		qc, err := ln.Accept(s.ctx)
		if err != nil {
			if s.isClosed() {
				return nil
			}
			return fmt.Errorf("quic accept: %w", err)
		}
		s.releaseSlot(stateOf(qc))
		if !s.goTracked(func() { s.serveConn(qc) }) {
			qc.CloseWithError(codeShuttingDown, "server shutting down")
		}
	}
}

// add records a socket's transport and listener, for CloseListeners and
// Close, and counts the accept loop in wg, unless the server is closed.
// The transport stays open (its connections use it) until Close.
func (s *Server) add(tr *quicgo.Transport, ln *quicgo.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.transports[tr] = struct{}{}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	if !s.reclaiming {
		s.reclaiming = true
		s.goLocked(s.reclaimLoop)
	}
	return true
}

// goTracked runs f in a goroutine counted in wg, unless the server is
// closed; it reports whether it did.
func (s *Server) goTracked(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.goLocked(f)
	return true
}

// goLocked runs f in a goroutine counted in wg. s.mu must be held and
// s.closed false: wg.Add never races with Close's wg.Wait (net/http's
// trackListener).
func (s *Server) goLocked(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// CloseListeners stops accepting new connections; connections already
// served carry on. (A quic-go listener shares its socket with the
// connections it accepted, so the socket stays open until Close.)
func (s *Server) CloseListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.draining.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
}

// lingers reports whether a draining close still waits for its client,
// which has not closed the connection itself, within closeLinger.
func (s *Server) lingers() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !time.Now().Before(s.lingerUntil) {
		return false
	}
	for qc := range s.lingering {
		if qc.Context().Err() == nil {
			return true
		}
	}
	return false
}

// Stats are the QUIC front's own counters, for metrics publishing; the
// core counts what it drops on the way out.
type Stats struct {
	DatagramsDropped int64 // received datagrams dropped: the relay lagged
	// Handshakes counts handshakes by outcome: "ok", "failed", "timeout".
	Handshakes map[string]int64
	// Conns is the number of QUIC connections, handshaking ones included.
	Conns int
	// Refused counts connection attempts refused before their handshake, by
	// reason: "banned" (the gate said no), "per_source" (MaxConnsPerSource)
	// and "total" (MaxConns). A client that resends its first packet before
	// the refusal reaches it is counted again.
	Refused map[string]int64
	// SlotTimeouts counts handshakes that waited slotWait for the accept
	// loop and went on without a slot (quic-go may then refuse them).
	SlotTimeouts int64
}

// Stats returns a snapshot of the front's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		DatagramsDropped: s.datagramsDropped.Load(),
		Handshakes: map[string]int64{
			"ok": s.handshakes[0].Load(), "failed": s.handshakes[1].Load(), "timeout": s.handshakes[2].Load(),
		},
		Conns:        s.admit.count(),
		Refused:      make(map[string]int64, len(refusalReasons)),
		SlotTimeouts: s.slotTimeouts.Load(),
	}
	for i, r := range refusalReasons {
		st.Refused[r] = s.refused[i].Load()
	}
	return st
}

// connState is what the front knows of one connection, from before its
// handshake on; connContext puts it in the connection's context.
type connState struct {
	// ctx is quic-go's context of the connection: it ends when the
	// connection closes.
	ctx context.Context
	// settled is whether the handshake was settled: accepted (counted ok)
	// or closed before (counted failed or timeout), whichever came first.
	settled atomic.Bool
	// loggedIn is set when the server answers a login on the command
	// stream; until then the connection's receive window stays small and
	// it may open no media stream.
	loggedIn atomic.Bool
	// slot is whether the connection holds a token of Server.slots.
	slot atomic.Bool
}

type connStateKey struct{}

// stateOf returns the front's state of qc, nil if it has none.
func stateOf(qc *quicgo.Conn) *connState {
	st, _ := qc.Context().Value(connStateKey{}).(*connState)
	return st
}

// connContext runs when a connection attempt arrives, before its handshake,
// on quic-go's packet loop. It refuses the attempt (quic-go answers
// CONNECTION_REFUSED) when the gate bans the source or a connection limit
// is reached. quic-go cancels ctx, with the reason, when the connection
// closes: the admission is given back then, and a connection that closes
// before it was accepted failed its handshake.
func (s *Server) connContext(ctx context.Context, ci *quicgo.ClientInfo) (context.Context, error) {
	addr := clientAddr(ci)
	var err error
	if s.gate != nil && !s.gate.Allow(addr) {
		err = errBanned
	} else {
		err = s.admit.take(sourceOf(addr))
	}
	if err != nil {
		s.refused[refusalByReason[err]].Add(1)
		return nil, err
	}
	st := &connState{ctx: ctx}
	context.AfterFunc(ctx, func() {
		s.releaseSlot(st)
		if s.admit.put(sourceOf(addr)) {
			select {
			case s.reclaim <- struct{}{}:
			default:
			}
		}
		if !st.settled.CompareAndSwap(false, true) {
			return
		}
		var hte *quicgo.HandshakeTimeoutError
		var ite *quicgo.IdleTimeoutError
		if cause := context.Cause(ctx); errors.As(cause, &hte) || errors.As(cause, &ite) {
			s.handshakes[2].Add(1)
		} else {
			s.handshakes[1].Add(1)
		}
	})
	return context.WithValue(ctx, connStateKey{}, st), nil
}

// allowWindowIncrease lets quic-go grow a connection's receive window only
// once it has logged in. It runs on quic-go's connection loop.
func allowWindowIncrease(qc *quicgo.Conn, _ uint64) bool {
	st := stateOf(qc)
	return st != nil && st.loggedIn.Load()
}

// handshakeDone counts an accepted connection's handshake as ok.
func (s *Server) handshakeDone(qc *quicgo.Conn) {
	if st := stateOf(qc); st != nil && st.settled.CompareAndSwap(false, true) {
		s.handshakes[0].Add(1)
	}
}

// reclaimLoop hands the memory of closed connections back to the system
// soon after many closed (admission.put decides): Go returns freed memory
// only after a garbage collection, and a server that allocates little after
// a burst of connections ends would otherwise wait for the runtime's
// two-minute forced collection, and the scavenger after it, holding the
// burst's peak meanwhile. It waits a moment first, for quic-go to drop
// the closed connections.
func (s *Server) reclaimLoop() {
	for {
		select {
		case <-s.reclaim:
		case <-s.ctx.Done():
			return
		}
		select {
		case <-time.After(reclaimDelay):
			debug.FreeOSMemory()
		case <-s.ctx.Done():
			return
		}
	}
}

// reclaimDelay is how long reclaimLoop waits before it collects.
const reclaimDelay = 2 * time.Second

// Close stops accepting, closes every connection and socket, and waits for
// all goroutines of the front. Idempotent.
func (s *Server) Close() error {
	s.CloseListeners()
	for s.lingers() { // the last notices of a drain
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	for _, t := range s.lingering {
		t.Stop() // the context closes them now
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait() // connections end with the context; then the sockets go
	s.mu.Lock()
	for tr := range s.transports {
		tr.Close()
		tr.Conn.Close()
	}
	s.mu.Unlock()
	return nil
}
