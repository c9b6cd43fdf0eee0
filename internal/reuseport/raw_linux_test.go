package reuseport

import (
	"net"

	"golang.org/x/sys/unix"
)

// rawInsn is a classic BPF instruction: op, jt, jf, k.
type rawInsn struct {
	op     uint16
	jt, jf uint8
	k      uint32
}

// attachRaw attaches a hand-written program to udp's reuseport group.
func attachRaw(udp *net.UDPConn, prog []rawInsn) error {
	f := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		f[i] = unix.SockFilter{Code: in.op, Jt: in.jt, Jf: in.jf, K: in.k}
	}
	rc, err := udp.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF,
			&unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]})
	}); err != nil {
		return err
	}
	return serr
}
