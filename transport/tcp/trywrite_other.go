//go:build !unix

package tcp

import "net"

// sendRoom has no cheap check outside unix: TryWriteMedia always declines
// and every frame takes the receiver's writer goroutine.
type sendRoom struct{}

func newSendRoom(net.Conn) *sendRoom { return nil }

func (*sendRoom) now() bool { return false }
