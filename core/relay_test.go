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

// tryConn is a fake media channel that takes direct writes as decide says
// (attempts are numbered from 0). What it holds (transport.Held) goes out
// with the next WriteMedia.
type tryConn struct {
	*fakeConn
	attempts atomic.Int64
	decide   func(attempt int64) (transport.TryResult, error)

	mu          sync.Mutex
	held        []byte
	triedOnHeld bool // a write was tried while bytes were held: the core must not
}

func (c *tryConn) TryWriteMedia(p []byte) (transport.TryResult, error) {
	res, err := c.decide(c.attempts.Add(1) - 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held) > 0 {
		c.triedOnHeld = true
	}
	switch {
	case err != nil:
		return transport.Written, err
	case res == transport.Held:
		c.held = append(c.held, p...)
		return res, nil
	case res == transport.NotTaken:
		return res, nil
	}
	select {
	case c.out <- append([]byte(nil), p...):
		return transport.Written, nil
	default:
		return transport.NotTaken, nil // the reader is behind: no room
	}
}

// WriteMedia writes what is held, then p.
func (c *tryConn) WriteMedia(p []byte) error {
	c.mu.Lock()
	held := c.held
	c.held = nil
	c.mu.Unlock()
	if len(held) > 0 {
		if err := c.fakeConn.WriteMedia(held); err != nil {
			return err
		}
	}
	if len(p) == 0 {
		return nil
	}
	return c.fakeConn.WriteMedia(p)
}

// room is the TryResult of a channel that has room or not.
func room(ok bool) transport.TryResult {
	if ok {
		return transport.Written
	}
	return transport.NotTaken
}

// callWithTryReceiver puts alice and bob in a call with bob's media on a
// tryConn deciding by decide.
func callWithTryReceiver(t *testing.T, h *harness, decide func(int64) (transport.TryResult, error)) (a, b *client, bm *tryConn) {
	a, b = inCall(t, h)
	bm = &tryConn{fakeConn: newFakeConn(b.cmd.origin), decide: decide}
	b.registerMediaConn(bm.fakeConn, bm)
	return a, b, bm
}

// Frames reach the receiver in order whether they go directly or through
// the queue, and however the two alternate; every frame arrives once or is
// counted as dropped.
func TestDirectAndQueuedFramesKeepOrder(t *testing.T) {
	// No room for 7 attempts in every 14: frames queue up, and the direct
	// path must then wait until the queue is written.
	checkOrder(t, func(n int64) (transport.TryResult, error) { return room(n/7%2 == 0), nil })
}

// Frames a direct write held back part of go out before any later frame,
// whether the later ones are queued or written directly.
func TestHeldDirectWritesKeepOrder(t *testing.T) {
	// Of every 10 attempts: 3 written, 1 held, 3 written (if tried at all:
	// none may be while something is held), 3 without room.
	checkOrder(t, func(n int64) (transport.TryResult, error) {
		switch n % 10 {
		case 3:
			return transport.Held, nil
		case 7, 8, 9:
			return transport.NotTaken, nil
		}
		return transport.Written, nil
	})
}

// checkOrder sends frames to a tryConn deciding by decide and checks that
// they arrive in order, each once or counted as dropped.
func checkOrder(t *testing.T, decide func(int64) (transport.TryResult, error)) {
	h := newHarness(t, Config{MediaQueue: 8})
	a, b, bm := callWithTryReceiver(t, h, decide)
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
	bm.mu.Lock()
	defer bm.mu.Unlock()
	if bm.triedOnHeld || len(bm.held) > 0 {
		t.Fatalf("a write was tried while bytes were held (%v), or bytes are still held (%d)", bm.triedOnHeld, len(bm.held))
	}
}

// A receiver with no room never slows the sender: its frames queue and
// the oldest are dropped, while the sender's session stays responsive.
func TestDirectReceiverWithoutRoomDoesNotStallSender(t *testing.T) {
	h := newHarness(t, Config{MediaQueue: 4})
	a, b, bm := callWithTryReceiver(t, h, func(int64) (transport.TryResult, error) { return transport.NotTaken, nil })
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
	a, b, bm := callWithTryReceiver(t, h, func(int64) (transport.TryResult, error) { return transport.Written, broken })
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
