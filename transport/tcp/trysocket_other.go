//go:build !unix

package tcp

import "net"

// rawWriter needs non-blocking writes on the socket; elsewhere direct
// writes are declined and every frame takes the receiver's writer.
type rawWriter struct{}

func (*rawWriter) init(net.Conn) bool { return false }

func (*rawWriter) write([]byte) (int, error) { return 0, nil }
