package tcp

import (
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// detached is the socket of a trySocket that left the runtime's poller for
// a media loop (medialoop_linux.go). Reads are the loop's and never wait:
// an empty socket is errWouldBlock, and crypto/tls keeps what part of a
// record it has for the next read. Writes never wait either: what the
// socket has no room for is held (trySocket.held) and the loop sends it
// when the socket has room; a writer that must know its bytes went out
// (WriteMedia, the relay's write loop) waits for that within its write
// deadline (waitSent).
type detached struct {
	fd      int  // guarded by trySocket.mu; -1 once closed. The loop reads it without: it closes only after the loop let go
	drained bool // the loop's: the last read emptied the socket, so the next one would find nothing

	loop *mediaLoop
	push *pushed

	werr          error         // a failed write, for good; guarded by trySocket.mu
	writeDeadline atomic.Int64  // unix nanoseconds, 0 for none
	kicks         chan struct{} // 1 slot: held bytes went out, the deadline moved, or the socket closed
}

// errWouldBlock is a detached read finding nothing. crypto/tls takes it as
// it takes a timeout: not for good (it is Temporary), with the part of a
// record it has kept.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "no data on the socket now" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// maxHeld bounds what a detached socket holds for a client that does not
// read: a writer waits for a record to go before it writes the next, so
// only crypto/tls's own records (alerts, key updates) can pile up.
const maxHeld = 64 << 10

var errStalled = &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", unix.ENOBUFS)}

// detach moves s's socket out of the runtime's poller into loop l, for p:
// a duplicate of the descriptor becomes the socket's, and the runtime's
// is closed (which also takes it out of its poller; the socket lives on
// in the duplicate). False, with nothing changed, when s cannot be
// detached: it still replays the ClientHello, or its socket cannot be had.
func (s *trySocket) detach(l *mediaLoop, p *pushed) bool {
	if s.replay != nil || s.raw.rc == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fd := -1
	var dupErr error
	err := s.raw.rc.Control(func(sysfd uintptr) {
		fd, dupErr = unix.FcntlInt(sysfd, unix.F_DUPFD_CLOEXEC, 0)
	})
	if err != nil || dupErr != nil {
		return false
	}
	d := &detached{fd: fd, loop: l, push: p, kicks: make(chan struct{}, 1)}
	d.writeDeadline.Store(s.writeDeadline.Load())
	p.fd = fd
	s.det.Store(d)
	s.tcp.Close()
	return true
}

// read reads what the socket has without waiting.
func (d *detached) read(p []byte) (int, error) {
	if d.drained {
		return 0, errWouldBlock
	}
	for {
		n, err := unix.Read(d.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			d.drained = true
			return 0, errWouldBlock
		case err != nil:
			return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", err)}
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		if n < len(p) {
			d.drained = true // more would have come: nothing is left
		}
		return n, nil
	}
}

// write writes what of p the socket has room for now.
func (d *detached) write(p []byte) (int, error) {
	for {
		n, err := unix.Write(d.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, nil
		case err != nil:
			return 0, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", err)}
		}
		return n, nil
	}
}

func (d *detached) kick() {
	select {
	case d.kicks <- struct{}{}:
	default:
	}
}

// writeDetachedLocked takes all of p: it writes what the socket has room
// for now and holds the rest for the loop to send. s.mu must be held.
func (s *trySocket) writeDetachedLocked(d *detached, p []byte) (int, error) {
	switch {
	case d.werr != nil:
		return 0, d.werr
	case d.fd < 0:
		return 0, net.ErrClosed
	case len(s.held) > 0:
		if len(s.held)+len(p) > maxHeld {
			return 0, errStalled
		}
		s.held = append(s.held, p...)
		return len(p), nil
	}
	n, err := d.write(p)
	if err != nil {
		d.werr = err
		return 0, err
	}
	if n < len(p) {
		s.held = append(s.held, p[n:]...)
		s.holding.Store(true)
		d.loop.watchWrite(d.push, true)
	}
	return len(p), nil
}

// sendHeld sends what s holds, now that the loop saw room on the socket.
func (s *trySocket) sendHeld() {
	d := s.det.Load()
	s.mu.Lock()
	if len(s.held) > 0 && d.fd >= 0 && d.werr == nil {
		n, err := d.write(s.held)
		if err != nil {
			d.werr = err
		}
		s.held = s.held[n:]
	}
	if len(s.held) == 0 || d.werr != nil {
		s.held = nil
		s.holding.Store(false)
		if d.fd >= 0 {
			d.loop.watchWrite(d.push, false)
		}
	}
	s.mu.Unlock()
	d.kick()
}

// waitSent waits until nothing is held, within the write deadline.
func (s *trySocket) waitSent(d *detached) error {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		s.mu.Lock()
		held, fd, werr := len(s.held), d.fd, d.werr
		s.mu.Unlock()
		switch {
		case werr != nil:
			return werr
		case fd < 0:
			return net.ErrClosed
		case held == 0:
			return nil
		}
		var timeout <-chan time.Time
		if dl := d.writeDeadline.Load(); dl != 0 {
			wait := time.Until(time.Unix(0, dl))
			if wait <= 0 {
				return &net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded}
			}
			if t == nil {
				t = time.NewTimer(wait)
			} else {
				t.Reset(wait)
			}
			timeout = t.C
		}
		select {
		case <-d.kicks:
		case <-timeout:
		}
	}
}

// closeDetached ends the loop's reading, if it still reads, and closes the
// socket.
func (s *trySocket) closeDetached(d *detached) error {
	d.loop.end(d.push, net.ErrClosed)
	<-d.push.done
	s.mu.Lock()
	if d.fd >= 0 {
		unix.Close(d.fd)
		d.fd = -1
	}
	s.mu.Unlock()
	d.kick()
	return nil
}
