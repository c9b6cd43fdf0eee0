//go:build unix

package tcp

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// sendRoom tells whether the kernel would take a small write on a TCP
// socket at once: poll(2) with a zero timeout reports POLLOUT only while
// the send buffer has room (at least a third of it free), so one record of
// a few hundred bytes goes out without waiting. Not safe for concurrent
// use: the core serializes writes per connection.
type sendRoom struct {
	rc    syscall.RawConn
	fds   [1]unix.PollFd
	ready bool
	check func(fd uintptr) // built once, so a check allocates nothing
}

// newSendRoom returns nil when c is not a socket we can poll; TryWriteMedia
// then always declines.
func newSendRoom(c net.Conn) *sendRoom {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &sendRoom{rc: rc}
	r.check = func(fd uintptr) {
		r.fds[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT}
		n, err := unix.Poll(r.fds[:], 0)
		r.ready = err == nil && n == 1 && r.fds[0].Revents&unix.POLLOUT != 0
	}
	return r
}

// now reports whether the socket can take a small write without waiting.
// An error or hang-up on the socket reports false: the normal write path
// then meets the error.
func (r *sendRoom) now() bool {
	if r == nil {
		return false
	}
	r.ready = false
	if r.rc.Control(r.check) != nil {
		return false
	}
	return r.ready
}
