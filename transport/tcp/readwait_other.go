//go:build !unix

package tcp

import "net"

// readWait needs MSG_PEEK; elsewhere connections keep their buffers.
type readWait struct{}

func newReadWait(net.Conn) (readWait, bool) { return readWait{}, false }

func (readWait) readable() error { return nil }
