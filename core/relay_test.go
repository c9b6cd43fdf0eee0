package core

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtcall/dtcall/transport"
)

// tryConn is a fake media channel that takes direct writes when decide
// says it has room (attempts are numbered from 0).
type tryConn struct {
	*fakeConn
	attempts atomic.Int64
	decide   func(attempt int64) (room bool, err error)
}

func (c *tryConn) TryWriteMedia(p []byte) (bool, error) {
	room, err := c.decide(c.attempts.Add(1) - 1)
	if err != nil {
		return true, err
	}
	if !room {
		return false, nil
	}
	select {
	case c.out <- append([]byte(nil), p...):
		return true, nil
	default:
		return false, nil // the reader is behind: no room
	}
}

// callWithTryReceiver puts alice and bob in a call with bob's media on a
// tryConn deciding by decide.
func callWithTryReceiver(t *testing.T, h *harness, decide func(int64) (bool, error)) (a, b *client, bm *tryConn) {
	a, b = inCall(t, h)
	bm = &tryConn{fakeConn: newFakeConn(b.cmd.origin), decide: decide}
	b.registerMediaConn(bm.fakeConn, bm)
	return a, b, bm
}

// Frames reach the receiver in order whether they go directly or through
// the queue, and however the two alternate; every frame arrives once or is
// counted as dropped.
func TestDirectAndQueuedFramesKeepOrder(t *testing.T) {
	h := newHarness(t, Config{MediaQueue: 8})
	// No room for 7 attempts in every 14: frames queue up, and the direct
	// path must then wait until the queue is written.
	a, b, bm := callWithTryReceiver(t, h, func(n int64) (bool, error) { return n/7%2 == 0, nil })
	var got []int
	collect := func(m []byte) {
		for _, f := range strings.Fields(string(m)) {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Errorf("garbled media %q", m)
			}
			got = append(got, n)
		}
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case m := <-bm.out:
				collect(m)
			case <-done:
				for {
					select {
					case m := <-bm.out:
						collect(m)
					default:
						return
					}
				}
			}
		}
	})
	const frames = 400
	for i := range frames {
		a.media.put(" " + strconv.Itoa(i) + " ")
	}
	a.media.drained(t)
	ep := h.mediaOf(b)
	waitFor(t, func() bool { return ep.unwritten.Load() == 0 })
	close(done)
	wg.Wait()
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("frame %d arrived after frame %d", got[i], got[i-1])
		}
	}
	st := h.srv.Stats()
	drops := st.Drops["queue_head"] + st.Drops["queue_tail"]
	if int64(len(got))+drops != frames {
		t.Fatalf("%d frames arrived and %d were dropped, of %d sent", len(got), drops, frames)
	}
	if st.DirectWrites == 0 || st.DirectWrites == int64(len(got)) {
		t.Fatalf("%d direct writes for %d frames: both paths should have carried some", st.DirectWrites, len(got))
	}
}

// A receiver with no room never slows the sender: its frames queue and
// the oldest are dropped, while the sender's session stays responsive.
func TestDirectReceiverWithoutRoomDoesNotStallSender(t *testing.T) {
	h := newHarness(t, Config{MediaQueue: 4})
	a, b, bm := callWithTryReceiver(t, h, func(int64) (bool, error) { return false, nil })
	for len(bm.out) < cap(bm.out) { // and the write loop blocks on a full channel
		bm.out <- nil
	}
	for i := range 500 {
		a.media.put("frame " + strconv.Itoa(i))
	}
	a.media.drained(t)
	a.say("lookup", "bob")
	a.expect("lookup|bob|exists")
	b.say("lookup", "alice")
	b.expect("lookup|alice|exists")
	if st := h.srv.Stats(); st.Drops["queue_head"] == 0 || st.DirectWrites != 0 {
		t.Fatalf("want drop-oldest and no direct write: %+v", st)
	}
}

// A direct write that fails ends the receiver's media, not the sender's.
func TestDirectWriteErrorClosesReceiverMedia(t *testing.T) {
	h := newHarness(t, Config{MediaLossGrace: time.Millisecond})
	broken := errors.New("connection reset")
	a, b, bm := callWithTryReceiver(t, h, func(int64) (bool, error) { return true, broken })
	a.media.put("frame")
	waitFor(t, bm.isClosed)
	if st := h.srv.Stats(); st.WriteFailures != 1 || st.Drops["write_error"] != 1 {
		t.Fatalf("failed direct write not counted: %+v", st)
	}
	// Bob's media is gone, so alice is told the call dropped; her media
	// stays, and bob can register anew.
	a.expect("call|drop|" + a.sid)
	if a.media.isClosed() {
		t.Fatal("the sender's media was closed")
	}
	b.registerMedia()
}

// mediaOf returns c's current media endpoint.
func (h *harness) mediaOf(c *client) *mediaEndpoint {
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	return h.srv.sessions[sidOf(c.sid)].media
}

var _ transport.TryWriter = (*tryConn)(nil)

// Chunks still queued toward a receiver when its media connection closes
// are counted as dropped (gone), with the batch its write loop was
// writing; no chunk is left uncounted and nothing counts as a write
// failure.
func TestChunksLeftQueuedCountAsGone(t *testing.T) {
	h := newHarness(t, Config{MediaQueue: 8, MediaLossGrace: time.Hour})
	a, b := inCall(t, h)
	for len(b.media.out) < cap(b.media.out) { // bob's media stops taking writes
		b.media.out <- nil
	}
	old := h.mediaOf(b)
	const frames = 20
	for i := range frames {
		a.media.put("frame " + strconv.Itoa(i))
	}
	a.media.drained(t)
	waitFor(t, func() bool { return old.unwritten.Load() > 0 })
	b.registerMedia() // replaces the stalled connection
	waitFor(t, func() bool { return old.unwritten.Load() == 0 })
	waitFor(t, old.conn.(*fakeConn).isClosed)
	st := h.srv.Stats()
	gone, lost := st.Drops["gone"], st.Drops["queue_head"]+st.Drops["queue_tail"]
	if gone == 0 || gone+lost != frames {
		t.Fatalf("%d gone and %d dropped for room, of %d frames none of which arrived", gone, lost, frames)
	}
	if st.Drops["write_error"] != 0 || st.WriteFailures != 0 {
		t.Fatalf("closing the receiver counted as a write failure: %+v", st)
	}
	a.media.put("after")
	if got := readMedia(t, b); got != "after" {
		t.Fatalf("media on the new connection: %q", got)
	}
}

// The media writer ends after writerLinger without anything to write and
// starts again for the next chunk: a call that pauses longer loses nothing.
func TestMediaWriterRestartsAfterItsLinger(t *testing.T) {
	h := newHarness(t, Config{})
	a, b := inCall(t, h)
	a.media.put("before the pause")
	if got := readMedia(t, b); got != "before the pause" {
		t.Fatalf("bob got %q", got)
	}
	ep := func() *mediaEndpoint {
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		return h.srv.sessions[sidOf(b.sid)].media
	}()
	waitFor(t, func() bool { return !ep.writer.isRunning() })
	a.media.put("after the pause")
	if got := readMedia(t, b); got != "after the pause" {
		t.Fatalf("bob got %q after the writer retired", got)
	}
}
