// Package natstest runs an embedded nats-server with JetStream on
// 127.0.0.1 for tests, and can stop it and start it again on the same port
// (outage tests).
package natstest

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startTimeout bounds one start of the server.
const startTimeout = 5 * time.Second

// Server is an embedded nats-server. Its methods are safe for concurrent use.
type Server struct {
	tb testing.TB

	mu   sync.Mutex
	opts server.Options // Port fixed after the first start
	ns   *server.Server // nil while stopped
}

// Start starts a server and returns its URL and a stop function (also run
// by tb.Cleanup; calling it twice is fine).
func Start(tb testing.TB) (url string, stop func()) {
	s := StartServer(tb)
	return s.URL(), s.Stop
}

// StartServer starts a server on a free port of 127.0.0.1, with JetStream
// storing in a temporary directory. tb.Cleanup stops it.
func StartServer(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{tb: tb, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  tb.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}}
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// URL is the server's client URL (the same across restarts).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port)
}

// Stop shuts the server down and waits until it is. Clients see their
// connection drop. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns == nil {
		return
	}
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.ns = nil
}

// Restart starts the stopped server again on the same port. With fresh,
// JetStream starts from an empty store (the bucket is gone); without, it
// finds what it had stored (memory streams are gone either way).
func (s *Server) Restart(fresh bool) {
	s.tb.Helper()
	s.mu.Lock()
	if fresh {
		s.opts.StoreDir = s.tb.TempDir()
	}
	s.mu.Unlock()
	if err := s.start(); err != nil {
		s.tb.Fatal(err)
	}
}

// start starts the server, retrying for a while if the port is not free yet.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns != nil {
		return fmt.Errorf("natstest: server already running")
	}
	var err error
	for range 5 {
		if err = s.startLocked(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // the port of a stopped server, briefly busy
	}
	return err
}

func (s *Server) startLocked() error {
	opts := s.opts // NewServer keeps and changes its argument
	ns, err := server.NewServer(&opts)
	if err != nil {
		return fmt.Errorf("natstest: new server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(startTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return fmt.Errorf("natstest: server on port %d not ready in %v", s.opts.Port, startTimeout)
	}
	if s.opts.Port <= 0 {
		s.opts.Port = ns.Addr().(*net.TCPAddr).Port
	}
	s.ns = ns
	return nil
}
