package client

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// setUserTimeout sets TCP_USER_TIMEOUT on conn to lostAfter during a call
// (inCall), so that the kernel ends the connection when what the client
// sends goes unacknowledged that long, and back to the system's default
// (0) after it: an idle phone rides out a short outage.
func setUserTimeout(conn net.Conn, inCall bool) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	ms := 0
	if inCall {
		ms = int(lostAfter.Milliseconds())
	}
	raw.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms)
	})
}
