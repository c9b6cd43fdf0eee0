//go:build !linux

package reuseport

import (
	"context"
	"errors"
	"net"
)

// Supported reports whether this system has SO_REUSEPORT with steering.
const Supported = false

// ErrUnsupported is the error of every function here on this system.
var ErrUnsupported = errors.New("reuse_port needs Linux (SO_REUSEPORT with a BPF steering program)")

// Listen fails: see ErrUnsupported.
func Listen(context.Context, string) (net.Listener, error) { return nil, ErrUnsupported }

// ListenUDP fails: see ErrUnsupported.
func ListenUDP(context.Context, string, byte) (*net.UDPConn, error) { return nil, ErrUnsupported }
