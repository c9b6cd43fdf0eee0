//go:build unix

package tcp

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// readWait waits until a TCP socket has data (or an error, or EOF) without
// reading it: MSG_PEEK of one byte, through the runtime's poller, within
// the socket's read deadline.
type readWait struct {
	rc    syscall.RawConn
	check func(fd uintptr) bool // built once: a wait allocates nothing
}

func newReadWait(c net.Conn) (readWait, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return readWait{}, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return readWait{}, false
	}
	var one [1]byte
	check := func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return err != unix.EAGAIN && err != unix.EWOULDBLOCK && err != unix.EINTR
	}
	return readWait{rc: rc, check: check}, true
}

// readable returns once the socket has something to read, or with the
// deadline's error.
func (w readWait) readable() error {
	return w.rc.Read(w.check)
}
