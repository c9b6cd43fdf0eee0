package core

import (
	"time"

	"github.com/dtcall/dtcall/transport"
)

// How media reaches a receiver. A sender's read loop writes a frame
// directly when the receiver's connection can take it at once and nothing
// is waiting; otherwise the frame joins the receiver's drop-oldest queue,
// which the receiver's write loop drains. Either way the sender never
// waits for the receiver.

// enqueue queues c toward this endpoint's client. It never blocks: when the
// queue is full the oldest chunk goes (late voice is worse than lost voice),
// and if it is still full the new one does.
func (ep *mediaEndpoint) enqueue(c *chunk) {
	ep.unwritten.Add(1)
	select {
	case ep.queue <- c:
		return
	default:
	}
	select {
	case old := <-ep.queue:
		ep.srv.metrics.drop(DropQueueHead)
		ep.unwritten.Add(-1)
		old.free()
	default:
	}
	select {
	case ep.queue <- c:
	default:
		ep.srv.metrics.drop(DropQueueTail)
		ep.unwritten.Add(-1)
		c.free()
	}
}

// writeLoop writes queued chunks to the client. Chunks waiting together are
// written in one piece (except in datagram mode), which keeps up with a
// burst at a fraction of the writes. A write that misses MediaWriteTimeout
// (give or take a quarter) ends this endpoint, never the sender.
func (ep *mediaEndpoint) writeLoop() {
	s := ep.srv
	var batch []byte // grows with the first bursts: most idle endpoints never need 16 KiB
	var next *chunk
	for {
		if next == nil {
			select {
			case next = <-ep.queue:
			case <-ep.closed:
				return
			}
		}
		ep.wmu.Lock()
		var chunks int64
		batch, next, chunks = ep.gather(batch[:0], next)
		ep.pushWriteDeadline()
		err := ep.conn.WriteMedia(batch)
		ep.unwritten.Add(-chunks)
		ep.wmu.Unlock()
		if err != nil {
			ep.writeFailed(err)
			return
		}
		s.metrics.mediaBytesOut.Add(int64(len(batch)))
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
	select {
	case <-ep.closed:
		return true // going away: the write loop would drop it too
	default:
	}
	ep.pushWriteDeadline()
	wrote, err := ep.direct.TryWriteMedia(p)
	switch {
	case err != nil:
		ep.writeFailed(err)
	case wrote:
		ep.srv.metrics.mediaBytesOut.Add(int64(len(p)))
		ep.srv.metrics.directWrites.Add(1)
	}
	return wrote || err != nil
}

// pushWriteDeadline keeps a write deadline between 3/4 and all of
// MediaWriteTimeout ahead, resetting the timer at most every quarter of it
// instead of for every frame. ep.wmu must be held.
func (ep *mediaEndpoint) pushWriteDeadline() {
	timeout := ep.srv.cfg.MediaWriteTimeout
	if now := time.Now(); ep.writeDeadline.Sub(now) < timeout*3/4 {
		ep.writeDeadline = now.Add(timeout)
		ep.conn.SetWriteDeadline(ep.writeDeadline)
	}
}

// writeFailed ends this endpoint after a failed or timed-out write; the
// sender carries on.
func (ep *mediaEndpoint) writeFailed(err error) {
	ep.srv.metrics.drop(DropWriteError)
	ep.srv.metrics.writeTimeouts.Add(1)
	ep.log.Info("media write failed; closing the receiver's media", "tag", "media", "dir", "error", "err", err)
	ep.close()
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
