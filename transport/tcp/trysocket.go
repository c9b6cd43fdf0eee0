package tcp

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
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
	// What each record touches comes first, within one cache line.
	net.Conn             // what crypto/tls reads from, and writes to normally
	tcp      net.Conn    // the TCP connection under it
	trying   atomic.Bool // set by the media writer around a tried write
	holding  atomic.Bool // len(held) > 0, set under mu, read without it

	// replay is Conn while it replays bytes read before the handshake
	// (clienthello.ReplayConn); nil once it has none left. Only Read uses
	// it, and crypto/tls never reads from two goroutines at once.
	replay drainer

	// mu guards held. crypto/tls writes under its own lock, but it may
	// write on its own (a KeyUpdate reply from the reading goroutine), and
	// flush comes from outside it.
	mu   sync.Mutex
	held []byte // the unwritten tail of records a tried write took

	raw rawWriter // the TCP socket's non-blocking write (in here: one object less to fetch)

	// det is set once the socket has left the runtime's poller for a
	// media loop: reads and writes then go to it without waiting.
	det atomic.Pointer[detached]
	// writeDeadline is the last write deadline set (unix nanoseconds, 0
	// for none), for the socket to keep when it is detached.
	writeDeadline atomic.Int64
}

// newTrySocket wraps c, the connection crypto/tls will use, whose socket
// is tcp; nil when tcp's writes cannot be tried.
func newTrySocket(c net.Conn, tcp net.Conn) *trySocket {
	s := &trySocket{Conn: c, tcp: tcp}
	if !s.raw.init(tcp) {
		return nil
	}
	if d, ok := c.(drainer); ok && c != tcp {
		s.replay = d
	}
	return s
}

// drainer is a connection that first returns bytes of its own
// (clienthello.ReplayConn), then reads the connection it wraps.
type drainer interface{ Drained() bool }

// Read reads for crypto/tls: through Conn while it replays what was read
// before the handshake, then from the TCP connection itself, one layer
// (and one object to fetch into the cache) less for every record.
func (s *trySocket) Read(p []byte) (int, error) {
	if d := s.det.Load(); d != nil {
		return d.read(p)
	}
	if s.replay == nil {
		return s.tcp.Read(p)
	}
	n, err := s.Conn.Read(p)
	if s.replay.Drained() {
		s.replay = nil
	}
	return n, err
}

// Write writes p for crypto/tls: without waiting while a tried write is in
// progress, else after whatever is held.
func (s *trySocket) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.det.Load(); d != nil {
		return s.writeDetachedLocked(d, p)
	}
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

// SetWriteDeadline sets the socket's write deadline, and keeps it for the
// socket to take along when it is detached.
func (s *trySocket) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	s.writeDeadline.Store(ns)
	if d := s.det.Load(); d != nil {
		d.writeDeadline.Store(ns)
		d.kick()
		return nil
	}
	return s.Conn.SetWriteDeadline(t)
}

// SetReadDeadline sets the socket's read deadline; a detached socket has
// none (its loop ends it instead: recordConn.setLazyDeadline).
func (s *trySocket) SetReadDeadline(t time.Time) error {
	if s.det.Load() != nil {
		return nil
	}
	return s.Conn.SetReadDeadline(t)
}

// SetDeadline sets both deadlines.
func (s *trySocket) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// Close closes the socket: a detached one once its loop has let go of it.
func (s *trySocket) Close() error {
	if d := s.det.Load(); d != nil {
		return s.closeDetached(d)
	}
	return s.Conn.Close()
}
