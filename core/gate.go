package core

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtcall/dtcall/transport"
)

// How a connection closes. Nothing that holds Server.mu may close a
// connection: a TLS close may wait for a blocked writer, and quic-go's
// CloseWithError waits for the connection's run loop. So, as in
// nats-server's markConnAsClosed, any goroutine only marks a connection
// closed (gate.shut), which fails its loops' reads and writes at once
// without I/O; the goroutine that owns the connection (ServeCommand,
// ServeMedia) then calls Close, with no lock held.

// past is a deadline long gone: set as a read or write deadline, it fails
// a blocked read or write at once (net/http's abortPendingRead).
var past = time.Unix(1, 0)

// gate is the closed mark of one connection. Shutting it closes done and
// pushes both of the connection's deadlines into the past. Setting a
// deadline is cheap and never blocks in either adapter (a poller timer on
// the legacy front, a stream's mutex and a channel signal on QUIC), so a
// gate may be shut with Server.mu held. The connection's loops set their
// deadlines through the gate, which ignores them once it is shut: a loop
// that pushes its idle deadline forward cannot undo the mark. Safe for
// concurrent use.
type gate struct {
	conn transport.Conn
	done chan struct{} // closed when the gate is shut

	mu   sync.Mutex  // serializes deadline changes with shutting
	shut atomic.Bool // set under mu; read without it by closed, on every relayed frame
}

func newGate(c transport.Conn) *gate {
	return &gate{conn: c, done: make(chan struct{})}
}

// close marks the connection closed and unblocks its reader and writer.
// It never blocks on I/O and may be called any number of times, from any
// goroutine.
func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut.Load() {
		return
	}
	g.shut.Store(true)
	close(g.done)
	g.conn.SetReadDeadline(past)
	g.conn.SetWriteDeadline(past)
}

// closed reports whether the gate is shut. A load of a flag, not a
// receive from done: the relay asks for every frame, and done's channel
// is one more object to bring into the cache.
func (g *gate) closed() bool { return g.shut.Load() }

// setReadDeadline sets the connection's read deadline unless it is closed.
func (g *gate) setReadDeadline(t time.Time) {
	g.mu.Lock()
	if !g.shut.Load() {
		g.conn.SetReadDeadline(t)
	}
	g.mu.Unlock()
}

// setWriteDeadline sets the connection's write deadline unless it is closed.
func (g *gate) setWriteDeadline(t time.Time) {
	g.mu.Lock()
	if !g.shut.Load() {
		g.conn.SetWriteDeadline(t)
	}
	g.mu.Unlock()
}
