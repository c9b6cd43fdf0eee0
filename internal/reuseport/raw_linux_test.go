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
	return attach(udp, f)
}
