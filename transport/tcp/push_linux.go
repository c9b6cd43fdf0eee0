package tcp

import (
	"os"
	"sync"
	"time"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/wire"
)

var _ transport.Pusher = (*recordConn)(nil)

// pushState is a recordConn's place in a media loop, once it has one.
type pushState struct {
	loops *loopSet // the front's; nil: the connection is always read by its goroutine

	mu   sync.Mutex // serializes joining a loop with SetReadDeadline
	p    *pushed
	loop *mediaLoop
}

// PushMedia has one of the front's media loops read the connection until
// it ends (see transport.Pusher). Only a crypto/tls connection whose
// socket can be detached joins one; others get transport.ErrNoPush.
func (c *recordConn) PushMedia(idle time.Duration, deliver func([]byte)) error {
	if c.push.loops == nil || c.try == nil || c.lazy == nil {
		return transport.ErrNoPush
	}
	p, l, err := c.joinLoop(deliver)
	if p == nil {
		return err
	}
	if idle <= 0 {
		<-p.done
		return p.err
	}
	t := time.NewTimer(idle)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return p.err
		case <-t.C:
			// Idle if nothing came for idle; else look again when it could be.
			if since := time.Duration(l.now() - p.last.Load()); since < idle {
				t.Reset(idle - since)
			} else {
				l.end(p, os.ErrDeadlineExceeded)
			}
		}
	}
}

// joinLoop detaches the socket into a loop. It returns a nil pushed with
// transport.ErrNoPush when the connection stays with its goroutine, or with
// the error that ends it.
func (c *recordConn) joinLoop(deliver func([]byte)) (*pushed, *mediaLoop, error) {
	c.push.mu.Lock()
	defer c.push.mu.Unlock()
	if c.lazy.pastDeadline() {
		return nil, nil, os.ErrDeadlineExceeded // marked closed already
	}
	l, err := c.push.loops.pick()
	if err != nil {
		return nil, nil, transport.ErrNoPush
	}
	p := &pushed{
		sc:      c.sc,
		sock:    c.try,
		deliver: withoutKeepalives(deliver),
		done:    make(chan struct{}),
	}
	if !c.try.detach(l, p) {
		return nil, nil, transport.ErrNoPush
	}
	if c.lazy.bufp != nil {
		c.lazy.giveBack() // the loop reads into a buffer of its own
	}
	p.last.Store(l.now())
	if err := l.add(p); err != nil {
		return nil, nil, err
	}
	c.push.p, c.push.loop = p, l
	return p, l, nil
}

// withoutKeepalives passes on every record but a lone "D", as ReadMedia
// does.
func withoutKeepalives(deliver func([]byte)) func([]byte) {
	return func(rec []byte) {
		if len(rec) == 1 && rec[0] == wire.Keepalive {
			return
		}
		deliver(rec)
	}
}

// setLazyDeadline sets the read deadline of a crypto/tls connection: on
// the reader's socket, or, once the connection is in a loop, as the loop
// has it: one in the past ends it, as it would fail a read.
func (c *recordConn) setLazyDeadline(t time.Time) error {
	c.push.mu.Lock()
	defer c.push.mu.Unlock()
	if c.push.p == nil {
		return c.lazy.setDeadline(c.sc, t)
	}
	if !t.IsZero() && !t.After(time.Now()) {
		c.push.loop.end(c.push.p, os.ErrDeadlineExceeded)
	}
	return nil
}
