package reuseport

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Supported reports whether this system has SO_REUSEPORT with steering.
const Supported = true

// ListenConfig returns a net.ListenConfig whose sockets have SO_REUSEPORT
// set before they are bound.
func ListenConfig() *net.ListenConfig {
	return &net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("SO_REUSEPORT: %w", serr)
		}
		return nil
	}}
}

// Listen listens on a TCP address with SO_REUSEPORT.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	return ListenConfig().Listen(ctx, "tcp", addr)
}

// ListenUDP binds a UDP address with SO_REUSEPORT and attaches the
// steering program for steering byte b to the socket's group (see Steer).
func ListenUDP(ctx context.Context, addr string, b byte) (*net.UDPConn, error) {
	pc, err := ListenConfig().ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	udp := pc.(*net.UDPConn)
	if err := Steer(udp, b); err != nil {
		udp.Close()
		return nil, err
	}
	return udp, nil
}

// Steer attaches the steering program for byte b to the reuseport group
// of udp, replacing the group's program: from now on, packets whose
// connection ID starts with b and new connections (Initial, 0-RTT) go to
// the group's socket 1 (the one bound second: this process), the rest to
// socket 0 (the old process). udp must be bound already: a program
// attached before bind would go to a group of its own that bind discards.
func Steer(udp *net.UDPConn, b byte) error {
	prog, err := program(b)
	if err != nil {
		return err
	}
	return attach(udp, prog)
}

// attach attaches prog to udp's reuseport group.
func attach(udp *net.UDPConn, prog []unix.SockFilter) error {
	rc, err := udp.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_ATTACH_REUSEPORT_CBPF: %w", serr)
	}
	return nil
}

// program assembles the steering program for byte b (the layout is in the
// package comment). A load past the packet's end ends a classic BPF
// program with 0: a runt goes to the old process, which drops it.
func program(b byte) ([]unix.SockFilter, error) {
	insns := []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: 0, Size: 1}, // A = first byte
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x80, SkipTrue: 3}, // long header: to 5
		// Short header: the DCID starts at offset 1.
		/* 2 */ bpf.LoadAbsolute{Off: 1, Size: 1},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(b), SkipTrue: 6}, // mine: to 10
		/* 4 */ bpf.RetConstant{Val: oldSocket},
		// Long header: Initial and 0-RTT start a connection (0-RTT keeps
		// the client's Initial DCID, which we did not choose).
		/* 5 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x30},
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpLessOrEqual, Val: 0x10, SkipTrue: 3}, // Initial, 0-RTT: to 10
		// Handshake (and Retry, which a server never receives): the DCID
		// starts at offset 6, after the version and its length.
		/* 7 */ bpf.LoadAbsolute{Off: 6, Size: 1},
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(b), SkipTrue: 1}, // mine: to 10
		/* 9 */ bpf.RetConstant{Val: oldSocket},
		/* 10 */ bpf.RetConstant{Val: newSocket},
	}
	raw, err := bpf.Assemble(insns)
	if err != nil {
		return nil, fmt.Errorf("assemble the steering program: %w", err)
	}
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out, nil
}
