//go:build !linux

package client

import "net"

// setUserTimeout is Linux's TCP_USER_TIMEOUT; elsewhere a dead path over
// TCP is noticed by TCP's own retransmission limits.
func setUserTimeout(net.Conn, bool) {}
