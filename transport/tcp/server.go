// Package tcp is the legacy front: the pair of TLS listeners (command port
// and media port) that deployed Android and Java clients speak, exactly as
// PROTOCOL.md sections 1-4 describe. It accepts, shakes hands (crypto/tls,
// or OpenSSL for clients that offer only DHE), frames messages as TLS
// records and hands each connection to a transport.Handler.
package tcp

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

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/transport/tcp/dhe"
)

// Config configures the legacy front.
type Config struct {
	// CertFile and KeyFile are the server's PEM certificate and key. The key
	// must be RSA for the DHE_RSA suites of 2017 Android clients.
	CertFile, KeyFile string
	// ModernCertFile and ModernKeyFile, if set, are the certificate that
	// crypto/tls serves (TLS 1.3 and ECDHE clients), for example an ECDSA
	// one from a public CA; CertFile stays the DHE engine's. Default:
	// CertFile and KeyFile for both engines.
	ModernCertFile, ModernKeyFile string
	// DHParamsFile and Ciphers are the old server's "dhfile" and "ciphers":
	// DH parameters and an OpenSSL cipher string for the DHE engine.
	DHParamsFile, Ciphers string
	// MaxDHEHandshakes caps the OpenSSL handshake steps running at once
	// (dhe.Config.MaxHandshakes); 0 = default.
	MaxDHEHandshakes int
	// HandshakeTimeout bounds reading the ClientHello and the whole TLS
	// handshake. Default 10 s.
	HandshakeTimeout time.Duration
	// MaxHandshakesPerSource caps the connections from one source (an IPv4
	// address, an IPv6 /64) in the handshake phase (accepted, TLS not done)
	// on both ports together; one more is closed right after accept.
	// 0 = DefaultMaxHandshakesPerSource.
	MaxHandshakesPerSource int
	// MaxHandshakes caps the connections in the handshake phase on both
	// ports together; one more is admitted and the oldest one still
	// shaking hands is cut to make room. 0 = DefaultMaxHandshakes.
	MaxHandshakes int
	// Gate, if set, is asked about each connection's source right after
	// accept, before any TLS work; a refused connection is closed at once.
	// nil allows every source.
	Gate transport.Gate
}

// Server runs the two legacy listeners. Its methods are safe for concurrent
// use.
type Server struct {
	handler   transport.Handler
	log       *slog.Logger
	tls       *tls.Config
	cert      atomic.Pointer[tls.Certificate] // crypto/tls's; replaced by Reload
	goSuites  []uint16                        // TLS 1.2 suites crypto/tls serves, for routing
	dhe       *dhe.Server                     // nil when DHE is not compiled in
	handshake time.Duration
	dheMax    int // Config.MaxDHEHandshakes, for Reload

	handshakes handshakeCounts
	gate       transport.Gate // nil: allow all
	admission  *admission
	refused    refusalCounts

	ctx    context.Context // cancelled by Close; parent of every connection's
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loops and connection goroutines

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	closed    bool

	loops loopSet // the media loops, once a connection joins one
}

// New loads the certificate and prepares both TLS engines. When DHE support
// is not compiled in, New still succeeds and logs, once, that DHE-only
// clients cannot connect; any other DHE setup error (a bad dhfile) fails.
func New(cfg Config, h transport.Handler, log *slog.Logger) (*Server, error) {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	cert, err := cfg.loadModern()
	if err != nil {
		return nil, err
	}
	s := &Server{
		handler:   h,
		log:       log,
		handshake: cfg.HandshakeTimeout,
		dheMax:    cfg.MaxDHEHandshakes,
		gate:      cfg.Gate,
		admission: newAdmission(cfg.MaxHandshakesPerSource, cfg.MaxHandshakes),
		listeners: make(map[net.Listener]struct{}),
	}
	s.cert.Store(cert)
	s.tls, s.goSuites = goTLSConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil })
	s.dhe, err = dhe.NewServer(cfg.dheConfig())
	switch {
	case errors.Is(err, dhe.ErrUnavailable):
		log.Warn("DHE engine unavailable: clients that offer only DHE cipher suites (2017 Android) cannot connect", "tag", "tls", "dir", "system", "err", err)
		s.dhe = nil
	case err != nil:
		return nil, fmt.Errorf("DHE engine: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// loadModern loads the certificate crypto/tls serves.
func (cfg Config) loadModern() (*tls.Certificate, error) {
	certFile, keyFile := cfg.CertFile, cfg.KeyFile
	if cfg.ModernCertFile != "" {
		certFile, keyFile = cfg.ModernCertFile, cfg.ModernKeyFile
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s / key %s: %w", certFile, keyFile, err)
	}
	return &cert, nil
}

func (cfg Config) dheConfig() dhe.Config {
	return dhe.Config{
		CertFile:      cfg.CertFile,
		KeyFile:       cfg.KeyFile,
		DHParamsFile:  cfg.DHParamsFile,
		Ciphers:       cfg.Ciphers,
		MaxHandshakes: cfg.MaxDHEHandshakes,
	}
}

// Reload loads cfg's certificates, DH parameters and ciphers (the other
// fields are ignored) and makes later handshakes use them; connections in
// progress keep theirs. On error nothing changes. Operators may replace
// the files in place (certbot renews into the same path): each Reload reads
// them afresh.
func (s *Server) Reload(cfg Config) error {
	cert, err := cfg.loadModern()
	if err != nil {
		return err
	}
	if s.dhe != nil {
		dc := cfg.dheConfig()
		dc.MaxHandshakes = s.dheMax
		if err := s.dhe.Reload(dc); err != nil {
			return fmt.Errorf("DHE engine: %w", err)
		}
	}
	s.cert.Store(cert)
	return nil
}

// goTLSConfig is crypto/tls's side: TLS 1.3, and TLS 1.2 with ECDHE suites,
// serving the certificate getCert returns.
func goTLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) (*tls.Config, []uint16) {
	var suites []uint16
	for _, cs := range tls.CipherSuites() {
		for _, v := range cs.SupportedVersions {
			if v == tls.VersionTLS12 {
				suites = append(suites, cs.ID)
				break
			}
		}
	}
	return &tls.Config{
		GetCertificate: getCert,
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   suites,
		// Replies are tiny and each must be one record; never split them.
		DynamicRecordSizingDisabled: true,
	}, suites
}

// DHEAvailable reports whether clients offering only DHE can be served.
func (s *Server) DHEAvailable() bool { return s.dhe != nil }

// ServeCommand accepts command connections on ln until ln or the server is
// closed. ln is closed when ServeCommand returns. It returns nil after
// CloseListeners or Close, and the error otherwise: a listener closed by
// someone else, or an accept error that retrying cannot cure.
func (s *Server) ServeCommand(ln net.Listener) error {
	return s.serve(ln, "command", func(ctx context.Context, c *recordConn) {
		s.handler.ServeCommand(ctx, c)
	})
}

// ServeMedia accepts media connections on ln like ServeCommand.
func (s *Server) ServeMedia(ln net.Listener) error {
	return s.serve(ln, "media", func(ctx context.Context, c *recordConn) {
		s.handler.ServeMedia(ctx, c)
	})
}

// serve is the accept loop. It never reads from a connection: it asks the
// gate, counts the connection against the handshake caps and gives it its
// own goroutine for the ClientHello, the handshake and the session.
func (s *Server) serve(ln net.Listener, kind string, handle func(context.Context, *recordConn)) error {
	if !s.addListener(ln) {
		ln.Close()
		return net.ErrClosed
	}
	defer s.wg.Done()
	defer s.removeListener(ln)
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if !retryAccept(err) {
				return fmt.Errorf("accept on the %s port: %w", kind, err)
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does, instead of spinning or giving up.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "tag", kind, "dir", "error", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		if !s.accepted(nc, kind, handle) {
			return nil // closing
		}
	}
}

// accepted decides, cheaply and before any TLS work, what happens to a
// new connection: closed at once (the gate refuses its source, or the
// source has too many connections shaking hands), or served by a goroutine
// of its own. It returns false when the server is closing.
func (s *Server) accepted(nc net.Conn, kind string, handle func(context.Context, *recordConn)) bool {
	src := addrPort(nc.RemoteAddr()).Addr()
	if s.gate != nil && !s.gate.Allow(src) {
		s.refused.gate.Add(1)
		nc.Close()
		return true
	}
	t, evicted := s.admission.admit(s.ctx, src)
	if t == nil {
		s.refused.perSource.Add(1)
		nc.Close()
		return true
	}
	if evicted {
		s.refused.evicted.Add(1)
	}
	if !s.goConn(func() { s.serveConn(nc, t, kind, handle) }) {
		s.admission.release(t)
		nc.Close()
		return false
	}
	return true
}

// goConn runs f in a goroutine that Close waits for, unless the server is
// closing: the WaitGroup's Add happens under the same lock as the closed
// check (net/http's trackListener), so Close's Wait never races an Add.
func (s *Server) goConn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// serveConn shakes hands on nc within t (released when the handshake ends)
// and hands it to the core.
func (s *Server) serveConn(nc net.Conn, t *ticket, kind string, handle func(context.Context, *recordConn)) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true) // Nagle held the old server's small replies ~40 ms
		tc.SetKeepAlive(true)
	}
	log := s.log.With("peer", addrPort(nc.RemoteAddr()).Addr().String(), "tag", "tls", "port", kind)
	sc, err := s.secureApart(t.ctx, nc, log)
	evicted := errors.Is(context.Cause(t.ctx), errEvicted)
	s.admission.release(t)
	switch {
	case err != nil && evicted:
		// Counted in Stats; a line each would let a flood write the log.
		log.Debug("TLS handshake cut", "dir", "error", "err", err)
		nc.Close()
		return
	case err != nil:
		log.Info("TLS handshake failed", "dir", "error", "err", err)
		nc.Close()
		return
	}
	c := newRecordConn(sc, nc)
	c.push.loops = &s.loops
	handle(s.ctx, c)
}

// secureApart is secure on a goroutine of its own. The handshake's
// crypto grows a goroutine's stack to 16 KiB or more, and this goroutine
// goes on to read the connection for its whole life: an idle connection
// would keep that stack until collections shrink it. A goroutine that ends
// gives its stack back at once.
func (s *Server) secureApart(ctx context.Context, nc net.Conn, log *slog.Logger) (sc secureConn, err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc, err = s.secure(ctx, nc, log)
	}()
	<-done
	return sc, err
}

// addListener registers ln and counts its accept loop in s.wg, unless the
// server is closing.
func (s *Server) addListener(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) removeListener(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
	ln.Close()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// CloseListeners stops accepting; connections already served carry on.
// Shutdown calls it first, then lets the core drain calls.
func (s *Server) CloseListeners() {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
}

// Close stops accepting, cancels every connection's context (the core then
// closes them) and waits for all goroutines of the front. Idempotent.
func (s *Server) Close() error {
	s.CloseListeners()
	s.cancel()
	s.wg.Wait()
	s.loops.close()
	if s.dhe != nil {
		s.dhe.Close()
	}
	return nil
}
