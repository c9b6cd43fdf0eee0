//go:build !linux

package tcp

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/dtcall/dtcall/transport"
)

// Media loops need epoll: elsewhere every connection is read by its own
// goroutine, and none is ever detached.

type loopSet struct{}

func (*loopSet) close() {}

type pushState struct{ loops *loopSet }

type detached struct{ writeDeadline atomic.Int64 }

func (*detached) read([]byte) (int, error) { return 0, net.ErrClosed }
func (*detached) kick()                    {}

func (s *trySocket) writeDetachedLocked(*detached, []byte) (int, error) { return 0, net.ErrClosed }
func (s *trySocket) waitSent(*detached) error                           { return net.ErrClosed }
func (s *trySocket) closeDetached(*detached) error                      { return net.ErrClosed }

// PushMedia declines: the core reads the connection.
func (c *recordConn) PushMedia(time.Duration, func([]byte)) error { return transport.ErrNoPush }

func (c *recordConn) setLazyDeadline(t time.Time) error { return c.lazy.setDeadline(c.sc, t) }
