//go:build unix

package tcp

import (
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// rawWriter writes to a TCP socket without waiting: one write(2) through
// the runtime's poller, which checks the connection's state and deadline
// first but never parks. Not safe for concurrent use (trySocket.mu).
type rawWriter struct {
	rc   syscall.RawConn
	p    []byte
	n    int
	err  error
	once func(fd uintptr) bool // one write(2), built once: a write allocates nothing
}

// init readies w to write to c; false if c is not a socket it can write.
func (w *rawWriter) init(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	w.rc = rc
	w.once = func(fd uintptr) bool {
		for {
			w.n, w.err = unix.Write(int(fd), w.p)
			if w.err != unix.EINTR {
				return true // done either way: the caller holds what is left
			}
		}
	}
	return true
}

// write writes what of p the socket has room for now and returns how much
// that was; a full socket is not an error.
func (w *rawWriter) write(p []byte) (int, error) {
	w.p = p
	err := w.rc.Write(w.once)
	w.p = nil
	switch {
	case err != nil:
		return 0, err
	case w.err == unix.EAGAIN || w.err == unix.EWOULDBLOCK:
		return 0, nil
	case w.err != nil:
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", w.err)}
	}
	return w.n, nil
}
