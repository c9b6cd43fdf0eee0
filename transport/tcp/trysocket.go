package tcp

import (
	"net"
	"sync"
	"sync/atomic"
)

// trySocket is the TCP connection under a crypto/tls connection. Most
// writes pass through, but a media frame written directly by its sender
// (transport.TryWriter) must not wait for the receiver: while trying is
// set, a write goes to the socket without waiting (one non-blocking
// write(2)), and what the socket had no room for is held here. crypto/tls
// has sealed that record already, so it cannot be taken back: the held
// bytes go out first with the next write, which may wait.
//
// This replaces a poll(2) before every direct write with nothing: the
// write itself tells whether there was room.
type trySocket struct {
	net.Conn             // what crypto/tls reads from, and writes to normally
	raw      *rawWriter  // the TCP socket's non-blocking write
	trying   atomic.Bool // set by the media writer around a tried write

	// mu guards held. crypto/tls writes under its own lock, but it may
	// write on its own (a KeyUpdate reply from the reading goroutine), and
	// flush comes from outside it.
	mu      sync.Mutex
	held    []byte      // the unwritten tail of records a tried write took
	holding atomic.Bool // len(held) > 0, set under mu, read without it
}

// newTrySocket wraps c, the connection crypto/tls will use, whose socket
// is tcp; nil when tcp's writes cannot be tried.
func newTrySocket(c net.Conn, tcp net.Conn) *trySocket {
	raw, ok := newRawWriter(tcp)
	if !ok {
		return nil
	}
	return &trySocket{Conn: c, raw: raw}
}

// Write writes p for crypto/tls: without waiting while a tried write is in
// progress, else after whatever is held.
func (s *trySocket) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trying.Load() {
		return s.tryLocked(p)
	}
	if err := s.flushLocked(); err != nil {
		return 0, err
	}
	return s.Conn.Write(p)
}

// tryLocked takes all of p: it writes what the socket has room for now and
// holds the rest. s.mu must be held.
func (s *trySocket) tryLocked(p []byte) (int, error) {
	if len(s.held) > 0 {
		s.held = append(s.held, p...) // behind what waits already
		return len(p), nil
	}
	n, err := s.raw.write(p)
	if err != nil {
		return 0, err
	}
	if n < len(p) {
		s.held = append(s.held, p[n:]...)
		s.holding.Store(true)
	}
	return len(p), nil
}

// flush writes what is held, waiting for room within the write deadline.
func (s *trySocket) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

func (s *trySocket) flushLocked() error {
	if len(s.held) == 0 {
		return nil
	}
	n, err := s.Conn.Write(s.held)
	if err != nil {
		s.held = s.held[n:]
		return err
	}
	s.held = nil // most connections never hold again: do not keep the memory
	s.holding.Store(false)
	return nil
}
