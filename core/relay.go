package core

import (
	"errors"
	"time"

	"github.com/dtcall/dtcall/transport"
)

// This file is the relay's per-frame path. A sender's read loop writes a
// frame directly when the receiver's connection can take it at once and
// nothing is waiting; otherwise the frame joins the receiver's drop-oldest
// queue, which the receiver's write loop drains. Either way the sender
// never waits for the receiver. Nothing here takes Server.mu.

// readLoop relays what the client sends to its call partner, or discards it
// while there is no answered call. The read deadline is pushed forward at
// most every IdleTimeout/4 so that a busy call does not reset a timer per
// frame. A KeptAlive channel has none: the registration's deadline is
// cleared and its transport notices a vanished peer. A Pusher's transport
// reads it itself instead (an event loop, a datagram reader), calling
// received for each frame.
func (ep *mediaEndpoint) readLoop() error {
	s := ep.srv
	_, keptAlive := ep.conn.(transport.KeptAlive)
	idle := s.cfg.IdleTimeout
	if keptAlive {
		ep.gate.setReadDeadline(time.Time{})
		idle = 0
	}
	if p, ok := ep.conn.(transport.Pusher); ok {
		err := p.PushMedia(idle, ep.received)
		if !errors.Is(err, transport.ErrNoPush) {
			return readError(ep.gate, err)
		}
	}
	var deadline time.Time
	for {
		if now := time.Now(); !keptAlive && deadline.Sub(now) < s.cfg.IdleTimeout*3/4 {
			deadline = now.Add(s.cfg.IdleTimeout)
			ep.gate.setReadDeadline(deadline)
		}
		msg, err := ep.conn.ReadMedia()
		if err != nil {
			return readError(ep.gate, err)
		}
		ep.received(msg)
	}
}

// received relays msg, which ep's client sent, unless ep is no longer its
// session's media. It never blocks: a transport's event loop calls it.
func (ep *mediaEndpoint) received(msg []byte) {
	ep.srv.metrics.mediaBytesIn.Add(int64(len(msg)))
	if ep.sess.mediaNow.Load() == ep {
		ep.srv.relayFrom(ep.sess, msg)
	}
}

// relayFrom hands what sess's client sent to its call partner, or discards
// it while there is no answered call.
func (s *Server) relayFrom(sess *Session, msg []byte) {
	if peer := sess.relayTo.Load(); peer != nil {
		s.deliver(peer, msg)
	}
}

// deliver hands msg to sess's media endpoint: a direct write if it can take
// one now, else its queue.
func (s *Server) deliver(sess *Session, msg []byte) {
	dst := sess.mediaNow.Load()
	if dst == nil {
		s.metrics.drop(DropPeerGone)
		return
	}
	if !dst.writeDirect(msg) {
		dst.enqueue(newChunk(msg))
	}
}

// enqueue queues c toward this endpoint's client. It never blocks: when the
// queue is full the oldest chunk goes (late voice is worse than lost voice),
// and if it is still full the new one does. Toward an endpoint that is
// closed, c is gone.
func (ep *mediaEndpoint) enqueue(c *chunk) {
	ep.unwritten.Add(1)
	if ep.gate.closed() {
		ep.dropGone(c)
		return
	}
	select {
	case ep.queue <- c:
		ep.checkGone()
		ep.wake()
		return
	default:
	}
	select {
	case old := <-ep.queue:
		if len(old.b) > 0 { // an empty chunk only woke the write loop (writeDirect)
			ep.srv.metrics.drop(DropQueueHead)
		}
		ep.unwritten.Add(-1)
		old.free()
	default:
	}
	select {
	case ep.queue <- c:
		ep.checkGone()
		ep.wake()
	default:
		ep.srv.metrics.drop(DropQueueTail)
		ep.unwritten.Add(-1)
		c.free()
	}
}

// checkGone empties the queue if the endpoint closed while a chunk went in:
// its write loop and ServeMedia may have emptied it already.
func (ep *mediaEndpoint) checkGone() {
	if ep.gate.closed() {
		ep.discardQueued()
	}
}

// discardQueued drops every chunk in the queue as gone: the client will
// never get them.
func (ep *mediaEndpoint) discardQueued() {
	for {
		select {
		case c := <-ep.queue:
			ep.dropGone(c)
		default:
			return
		}
	}
}

// dropGone drops c, counted in unwritten, because its receiver is gone.
func (ep *mediaEndpoint) dropGone(c *chunk) {
	ep.srv.metrics.drop(DropGone)
	ep.unwritten.Add(-1)
	c.free()
}

// writerLinger is how long an idle writeLoop waits for more chunks before
// it ends: longer than the gaps of a call's frames, so that a call whose
// frames go through the queue keeps one writer.
const writerLinger = time.Second

// wake starts writeLoop unless one runs or the endpoint is ending. It never
// blocks on I/O.
func (ep *mediaEndpoint) wake() { ep.writer.start(ep.writeLoop) }

// retire ends writeLoop if nothing is queued; it reports whether it did.
// A chunk queued after it starts a new writeLoop.
func (ep *mediaEndpoint) retire() bool {
	return ep.writer.retire(func() bool { return len(ep.queue) == 0 })
}

// stopWriter keeps writeLoop from starting again and waits for the one
// running, once the endpoint is closed.
func (ep *mediaEndpoint) stopWriter() { ep.writer.stop() }

// writeLoop writes queued chunks to the client. Chunks waiting together are
// written in one piece (except in datagram mode), which keeps up with a
// burst at a fraction of the writes. A write that misses MediaWriteTimeout
// (give or take a quarter) ends this endpoint, never the sender. Once the
// endpoint is closed it writes nothing more; what is left is gone. It ends
// after writerLinger with nothing to write (wake starts it again).
func (ep *mediaEndpoint) writeLoop() {
	s := ep.srv
	var batch []byte // grows with the first bursts: most idle endpoints never need 16 KiB
	var next *chunk
	idle := time.NewTimer(writerLinger)
	defer idle.Stop()
	defer func() {
		if ep.gate.closed() {
			ep.discardQueued() // what the client will never get
		}
	}()
	for {
		if next == nil {
			select {
			case next = <-ep.queue:
			case <-ep.gate.done:
				return
			case <-idle.C:
				if ep.retire() {
					return
				}
				idle.Reset(writerLinger)
				continue
			}
		}
		if ep.gate.closed() {
			ep.dropGone(next)
			return
		}
		ep.wmu.Lock()
		var chunks int64
		batch, next, chunks = ep.gather(batch[:0], next)
		ep.pushWriteDeadline()
		err := ep.conn.WriteMedia(batch)
		ep.unwritten.Add(-chunks)
		ep.wmu.Unlock()
		if err != nil {
			ep.writeFailed(err, chunks)
			if next != nil {
				ep.dropGone(next)
			}
			return
		}
		s.metrics.mediaBytesOut.Add(int64(len(batch)))
		idle.Reset(writerLinger)
	}
}

// writeDirect writes p to the client from the calling (sender's) goroutine
// when that cannot wait: the connection takes direct writes and says it
// has room, nothing is queued, and the write loop is not writing. It
// reports whether p was dealt with; if not, the caller queues it. This
// saves waking the write loop for each frame, the relay's main cost on
// top of a bare forwarder.
func (ep *mediaEndpoint) writeDirect(p []byte) bool {
	if ep.direct == nil || len(p) > transport.MaxTryWrite || ep.unwritten.Load() > 0 || !ep.wmu.TryLock() {
		return false
	}
	defer ep.wmu.Unlock()
	// Checked again under wmu, where the write loop writes and then counts
	// down: zero means every queued chunk is out, so p cannot overtake one.
	if ep.unwritten.Load() > 0 {
		return false
	}
	if ep.gate.closed() {
		ep.srv.metrics.drop(DropGone)
		return true
	}
	ep.pushWriteDeadline()
	res, err := ep.direct.TryWriteMedia(p)
	switch {
	case err != nil:
		ep.writeFailed(err, 1)
		return true
	case res == transport.NotTaken:
		return false
	}
	ep.srv.metrics.mediaBytesOut.Add(int64(len(p)))
	ep.srv.metrics.directWrites.Add(1)
	if res == transport.Held {
		// The rest of p waits in the connection: an empty chunk wakes the
		// write loop to send it, and keeps further frames behind it.
		ep.enqueue(newChunk(nil))
	}
	return true
}

// pushWriteDeadline keeps a write deadline between 3/4 and all of
// MediaWriteTimeout ahead, resetting the timer at most every quarter of it
// instead of for every frame. ep.wmu must be held.
func (ep *mediaEndpoint) pushWriteDeadline() {
	timeout := ep.srv.cfg.MediaWriteTimeout
	if now := time.Now(); ep.writeDeadline.Sub(now) < timeout*3/4 {
		ep.writeDeadline = now.Add(timeout)
		ep.gate.setWriteDeadline(ep.writeDeadline)
	}
}

// writeFailed ends this endpoint after a failed or timed-out write of
// chunks chunks; the sender carries on. ServeMedia logs the error. A write
// that failed because the endpoint was closed lost its chunks as gone.
func (ep *mediaEndpoint) writeFailed(err error, chunks int64) {
	if ep.gate.closed() {
		ep.srv.metrics.drops[DropGone].Add(chunks)
		return
	}
	ep.srv.metrics.drop(DropWriteError)
	ep.srv.metrics.writeFailures.Add(1)
	ep.writeErr.CompareAndSwap(nil, &err)
	ep.gate.close()
}

// gather appends first and, unless in datagram mode, whatever else is queued
// that fits into one message. It returns the batch, a chunk that did not
// fit (to go first next time) or nil, and how many chunks the batch holds.
func (ep *mediaEndpoint) gather(batch []byte, first *chunk) ([]byte, *chunk, int64) {
	c := first
	for n := int64(1); ; n++ {
		ep.srv.metrics.queueDelay(int64(time.Since(c.queued)))
		batch = append(batch, c.b...)
		c.free()
		if ep.datagram {
			return batch, nil, n
		}
		select {
		case c = <-ep.queue:
		default:
			return batch, nil, n
		}
		if len(batch)+len(c.b) > transport.MaxMessage {
			return batch, c, n
		}
	}
}
