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
	wg     sync.WaitGroup // accept loops and connection goroutines

	// datagramsDropped counts received datagrams dropped because the relay
	// lagged behind (see dgramQueue).
	datagramsDropped atomic.Int64
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
			HandshakeIdleTimeout: cfg.HandshakeTimeout,
			MaxIdleTimeout:       cfg.IdleTimeout,
			KeepAlivePeriod:      cfg.KeepAlive,
			EnableDatagrams:      true,
		},
		handshake:    cfg.HandshakeTimeout,
		callLiveness: cfg.CallLiveness,
		transports:   make(map[*quicgo.Transport]struct{}),
		listeners:    make(map[*quicgo.Listener]struct{}),
		lingering:    make(map[*quicgo.Conn]*time.Timer),
	}
	s.cert.Store(cert)
	s.tls.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil }
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
// pc is closed when Serve returns.
func (s *Server) Serve(pc net.PacketConn) error {
	tr := &quicgo.Transport{Conn: pc, ConnContext: s.connContext}
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
	s.wg.Add(1)
	defer s.wg.Done()
	defer ln.Close()
	for {
		qc, err := ln.Accept(s.ctx)
		if err != nil {
			if s.isClosed() || errors.Is(err, quicgo.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("quic accept: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(qc)
		}()
	}
}

// add records a socket's transport and listener, for CloseListeners and
// Close. The transport stays open (its connections use it) until Close.
func (s *Server) add(tr *quicgo.Transport, ln *quicgo.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.transports[tr] = struct{}{}
	s.listeners[ln] = struct{}{}
	return true
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
}

// Stats returns a snapshot of the front's counters.
func (s *Server) Stats() Stats {
	return Stats{
		DatagramsDropped: s.datagramsDropped.Load(),
		Handshakes: map[string]int64{
			"ok": s.handshakes[0].Load(), "failed": s.handshakes[1].Load(), "timeout": s.handshakes[2].Load(),
		},
	}
}

// handshakeState is whether a connection's handshake was settled: accepted
// (counted ok) or closed before (counted failed or timeout), whichever
// comes first.
type handshakeState struct{ settled atomic.Bool }

type handshakeKey struct{}

// connContext runs when a connection attempt arrives, before its handshake.
// quic-go cancels ctx, with the reason, when the connection closes: a
// connection that closes before it was accepted failed its handshake.
func (s *Server) connContext(ctx context.Context, _ *quicgo.ClientInfo) (context.Context, error) {
	hs := &handshakeState{}
	context.AfterFunc(ctx, func() {
		if !hs.settled.CompareAndSwap(false, true) {
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
	return context.WithValue(ctx, handshakeKey{}, hs), nil
}

// handshakeDone counts an accepted connection's handshake as ok.
func (s *Server) handshakeDone(qc *quicgo.Conn) {
	if hs, ok := qc.Context().Value(handshakeKey{}).(*handshakeState); ok && hs.settled.CompareAndSwap(false, true) {
		s.handshakes[0].Add(1)
	}
}

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
