package main

import (
	"context"
	"errors"
	"time"

	"github.com/dtcall/dtcall/client"
)

// call rings the named user and, once answered, holds the call.
func (c *cli) call(ctx context.Context) int {
	peer := c.args[0]
	if code := c.open(); code != exitOK {
		return code
	}
	defer c.files.close()
	cl, code := c.connect(ctx, true)
	if cl == nil {
		return code
	}
	defer cl.Close()
	res, err := cl.Call(ctx, peer)
	if err != nil {
		return c.failed(ctx, "call", err)
	}
	switch res {
	case client.Busy:
		c.out.say("%s is busy", peer)
		return exitNoCall
	case client.NotAvailable:
		c.out.say("%s is not available (offline or unknown)", peer)
		return exitNoCall
	}
	c.out.say("ringing %s (Ctrl-C hangs up)", peer)
	if code, up := c.ringing(ctx, cl, peer); !up {
		return code
	}
	return c.hold(ctx, cl, peer)
}

// ringing waits until peer answers (up), rejects, leaves, or the ring
// time runs out, or Ctrl-C; then it gives up the call.
func (c *cli) ringing(ctx context.Context, cl *client.Client, peer string) (code int, up bool) {
	ring := time.NewTimer(c.ring)
	defer ring.Stop()
	for {
		select {
		case ev, ok := <-cl.Events():
			if !ok {
				return c.lost(cl), false
			}
			switch {
			case ev.Kind == client.Started && ev.Peer == peer:
				c.out.say("%s answered; the call is up (Ctrl-C hangs up)", peer)
				return exitOK, true
			case ev.Kind == client.Rejected:
				c.out.say("%s rejected the call", peer)
				return exitNoCall, false
			case ev.Kind == client.Ended:
				c.out.say("%s hung up", peer)
				return exitNoCall, false
			}
		case <-ring.C:
			if err := cl.Timeout(c.background(), peer); errors.Is(err, client.ErrRefused) {
				continue // answered just now: the start is on its way
			}
			c.out.say("%s did not answer within %v", peer, c.ring)
			return exitNoCall, false
		case <-ctx.Done():
			cl.End(c.background(), peer) // the caller cancels a ringing call with end
			c.out.say("cancelled")
			return exitInterrupted, false
		}
	}
}

// open opens the --play and --record files.
func (c *cli) open() int {
	var err error
	if c.files, err = c.openFiles(); err != nil {
		c.errs.say("dtcall: %v", err)
		return exitUsage
	}
	return exitOK
}

// background is a context for the last words after Ctrl-C.
func (c *cli) background() context.Context { return context.Background() }

// answer waits for a call, accepts it and holds it.
func (c *cli) answer(ctx context.Context) int {
	if code := c.open(); code != exitOK {
		return code
	}
	defer c.files.close()
	cl, code := c.connect(ctx, true)
	if cl == nil {
		return code
	}
	defer cl.Close()
	c.out.say("waiting for a call (Ctrl-C quits)")
	var deadline <-chan time.Time
	if c.wait > 0 {
		t := time.NewTimer(c.wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		var ev client.Event
		var ok bool
		select {
		case ev, ok = <-cl.Events():
			if !ok {
				return c.lost(cl)
			}
		case <-deadline:
			c.out.say("no call within %v", c.wait)
			return exitNoCall
		case <-ctx.Done():
			return exitInterrupted
		}
		if ev.Kind != client.Incoming {
			continue
		}
		c.out.say("%s is calling; answering", ev.Peer)
		if err := cl.Accept(ctx, ev.Peer); err != nil {
			if errors.Is(err, client.ErrRefused) {
				c.out.say("%s gave up before we answered", ev.Peer)
				continue
			}
			return c.failed(ctx, "accept", err)
		}
		return c.started(ctx, cl, ev.Peer)
	}
}

// started waits for the server's call|start after our accept.
func (c *cli) started(ctx context.Context, cl *client.Client, peer string) int {
	t := time.NewTimer(c.opts.Timeout)
	defer t.Stop()
	for {
		select {
		case ev, ok := <-cl.Events():
			if !ok {
				return c.lost(cl)
			}
			if ev.Kind == client.Started && ev.Peer == peer {
				c.out.say("the call with %s is up (Ctrl-C hangs up)", peer)
				return c.hold(ctx, cl, peer)
			}
		case <-t.C:
			c.errs.say("dtcall: the server did not start the call within %v", c.opts.Timeout)
			return exitError
		case <-ctx.Done():
			cl.End(c.background(), peer)
			return exitInterrupted
		}
	}
}
