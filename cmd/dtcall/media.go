package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/dtcall/dtcall/client"
)

// Media pacing: AMR-NB 12.2 kbit/s, as the deployed phones send it.
const (
	frameSize     = 32
	frameInterval = 20 * time.Millisecond // 50 frames per second
)

// After the call ends, the recorder keeps what still arrives until the
// line is quiet this long (at most drainMax): media sent just before the
// hang-up may trail the end notice.
const (
	drainQuiet = 300 * time.Millisecond
	drainMax   = 2 * time.Second
)

// files are the media files of a call, opened before connecting so that a
// bad path fails before anyone's phone rings.
type files struct {
	play   *os.File // nil without --play
	record *os.File // nil without --record
}

func (c *cli) openFiles() (files, error) {
	var f files
	var err error
	if c.play != "" {
		if f.play, err = os.Open(c.play); err != nil {
			return f, fmt.Errorf("--play: %w", err)
		}
	}
	if c.record != "" {
		if f.record, err = os.Create(c.record); err != nil {
			f.close()
			return f, fmt.Errorf("--record: %w", err)
		}
	}
	return f, nil
}

func (f files) close() error {
	var errs []error
	if f.play != nil {
		f.play.Close()
	}
	if f.record != nil {
		errs = append(errs, f.record.Close())
	}
	return errors.Join(errs...)
}

// hold runs an answered call: it plays and records media until either
// side hangs up, the played file ends, or Ctrl-C.
func (c *cli) hold(ctx context.Context, cl *client.Client, peer string) int {
	m := cl.Media()
	var wg sync.WaitGroup
	var rec *recorder
	if c.files.record != nil {
		rec = &recorder{m: m, w: bufio.NewWriter(c.files.record), finish: make(chan struct{})}
		wg.Go(rec.run)
	}
	played := make(chan error, 1)
	pctx, stopPlaying := context.WithCancel(ctx)
	if c.files.play != nil {
		wg.Go(func() { played <- play(pctx, m, c.files.play) })
	}
	code := c.talk(ctx, cl, peer, played)
	stopPlaying()
	if rec != nil {
		close(rec.finish)
	}
	wg.Wait()
	if rec != nil {
		if err := rec.done(); err != nil {
			c.errs.say("dtcall: --record: %v", err)
			if code == exitOK {
				code = exitError
			}
		} else {
			c.out.say("recorded %d bytes to %s", rec.n, c.record)
		}
	}
	return code
}

// talk waits for the end of the call and says how it ended.
func (c *cli) talk(ctx context.Context, cl *client.Client, peer string, played <-chan error) int {
	m := cl.Media()
	hangUp := func() { cl.End(c.background(), peer) } // refused if the peer just did: fine
	for {
		select {
		case ev, ok := <-cl.Events():
			if !ok {
				return c.lostInCall(cl)
			}
			switch ev.Kind {
			case client.Ended:
				c.out.say("%s hung up", peer)
				return exitOK
			case client.Dropped:
				c.out.say("the call dropped (the other side lost its connection)")
				return exitDropped
			}
		case err := <-played:
			var lost *mediaWriteError
			if errors.As(err, &lost) { // the channel failed under us, not the file
				return c.mediaLost(cl, lost.err)
			}
			if err != nil {
				c.errs.say("dtcall: --play: %v", err)
				hangUp()
				return exitError
			}
			c.out.say("end of %s; hanging up", c.play)
			code, over := c.linger(ctx, cl, peer)
			if over {
				return code
			}
			hangUp()
			c.out.say("hung up")
			return code
		case <-m.Done():
			return c.mediaLost(cl, m.Err())
		case <-ctx.Done():
			hangUp()
			c.out.say("hung up")
			return exitInterrupted
		}
	}
}

// lostInCall reports a command channel that ended during a call: the
// server or the path to it is gone, and with it the call.
func (c *cli) lostInCall(cl *client.Client) int {
	c.out.say("the call dropped: lost the server (%v)", cl.Err())
	return exitDropped
}

// mediaGrace is how long mediaLost waits for the command channel's word
// on a media channel that ended.
const mediaGrace = time.Second

// mediaLost reports a media channel that ended during a call. That ends the
// call, but this is no hang-up: nothing is sent, and the server tells the
// other side call|drop. A server that went away takes the command channel
// with it moments later, which says so.
func (c *cli) mediaLost(cl *client.Client, cause error) int {
	t := time.NewTimer(mediaGrace)
	defer t.Stop()
	for {
		select {
		case ev, ok := <-cl.Events():
			if !ok {
				return c.lostInCall(cl)
			}
			if ev.Kind == client.Dropped {
				c.out.say("the call dropped (the other side lost its connection)")
				return exitDropped
			}
		case <-t.C:
			c.out.say("the call dropped: %v", cause)
			return exitDropped
		}
	}
}

// linger waits a moment after the last played frame, so that it reaches
// the peer before the hang-up stops the relay; the peer may hang up
// meanwhile (over). Ctrl-C cuts it short: hang up now, exit 130.
func (c *cli) linger(ctx context.Context, cl *client.Client, peer string) (code int, over bool) {
	t := time.NewTimer(c.lingerFor)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return exitOK, false
		case <-ctx.Done():
			return exitInterrupted, false
		case ev, ok := <-cl.Events():
			if !ok {
				return c.lostInCall(cl), true
			}
			switch ev.Kind {
			case client.Ended:
				c.out.say("%s hung up", peer)
				return exitOK, true
			case client.Dropped:
				c.out.say("the call dropped (the other side lost its connection)")
				return exitDropped, true
			}
		}
	}
}

// play sends r as media: 32-byte frames (the last may be shorter), one
// every 20 ms, until r ends (nil) or ctx does.
func play(ctx context.Context, m *client.Media, r io.Reader) error {
	tick := time.NewTicker(frameInterval)
	defer tick.Stop()
	br := bufio.NewReader(r)
	frame := make([]byte, frameSize)
	for {
		n, err := io.ReadFull(br, frame)
		if n > 0 {
			if werr := m.WriteMedia(frame[:n]); werr != nil {
				return &mediaWriteError{werr}
			}
		}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		case err != nil:
			return err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// mediaWriteError is play's error when the media channel, not the file,
// failed: the call is over for the channel's reasons.
type mediaWriteError struct{ err error }

func (e *mediaWriteError) Error() string { return e.err.Error() }

// recorder writes received media to a file until the call ends and the
// line has been quiet for drainQuiet.
type recorder struct {
	m      *client.Media
	w      *bufio.Writer
	finish chan struct{} // closed when the call is over
	n      int64         // owned by run until it returns
	err    error         // owned by run until it returns
}

func (r *recorder) run() {
	var drainStart, last time.Time
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		b, err := r.m.ReadMedia(ctx)
		cancel()
		now := time.Now()
		if err == nil {
			last = now
			if _, err := r.w.Write(b); err != nil {
				r.err = err
				return
			}
			r.n += int64(len(b))
			continue
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return // the media channel ended; the call loop reports it
		}
		select {
		case <-r.finish:
			if drainStart.IsZero() {
				drainStart = now
			}
			if now.Sub(last) >= drainQuiet || now.Sub(drainStart) >= drainMax {
				return
			}
		default:
		}
	}
}

// done flushes the recording; call it after run returned.
func (r *recorder) done() error {
	if r.err != nil {
		return r.err
	}
	return r.w.Flush()
}
