package tcp

import (
	"errors"
	"net"
	"syscall"
)

// retryAccept reports whether an accept error may pass by itself: out of
// file descriptors or memory, a connection that went away before it was
// accepted, a firewall's refusal, a timeout. Anything else (the listener
// was closed, a socket that is not listening) ends the accept loop.
func retryAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, errno := range []syscall.Errno{
		syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPERM, syscall.EPROTO,
		syscall.EAGAIN, syscall.EINTR,
	} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}
