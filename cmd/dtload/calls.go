package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtcall/dtcall/client"
)

// stepTimeout bounds each step of a call's set-up (dial, login, media
// registration, ring, answer).
const stepTimeout = 10 * time.Second

// callOutcome is what one call did.
type callOutcome struct {
	reason     string    // "" when the call succeeded
	err        error     // why, when reason is set
	failedAt   time.Time // when reason was set
	note       string    // something worth counting that is not a failure
	ab, ba     *direction
	logins     []span
	setup      span // from the call command to both parties' start
	setupOK    bool
	mediaStart time.Time
}

// span is the start and end of one operation.
type span struct{ start, end time.Time }

func (s span) dur() time.Duration { return s.end.Sub(s.start) }

// fail records why the call failed.
func (o *callOutcome) fail(reason string, err error) {
	o.reason, o.err, o.failedAt = reason, err, time.Now()
}

// clientMedia adapts a dtcall client's media channel.
type clientMedia struct{ m *client.Media }

func (c clientMedia) write(p []byte) error                     { return c.m.WriteMedia(p) }
func (c clientMedia) read(ctx context.Context) ([]byte, error) { return c.m.ReadMedia(ctx) }
func (c clientMedia) datagram() bool                           { return c.m.Datagram() }

// party is one side of a call against a dtcall server.
type party struct {
	acct  account
	kind  client.Transport
	from  string         // local address to connect from; "" = any
	opts  client.Options // its node's (runner.optsFor)
	c     *client.Client
	login span
}

// online dials, logs in and registers media. On failure it says which
// step failed (the reason) and why, naming the user and transport.
func (p *party) online(ctx context.Context, o client.Options) (reason string, err error) {
	o.Transport = p.kind
	o.Timeout = stepTimeout
	if p.from != "" {
		o.LocalAddr = p.from
	}
	reason = "dial"
	if p.c, err = client.Dial(ctx, o); err == nil {
		reason = "login"
		p.login.start = time.Now()
		if err = p.c.Login(ctx, p.acct.name, p.acct.password); err == nil {
			p.login.end = time.Now()
			reason = "register_media"
			err = p.c.RegisterMedia(ctx)
		}
	}
	if err != nil {
		return reason, fmt.Errorf("%s over %v: %w", p.acct.name, p.kind, err)
	}
	return "", nil
}

// waitEvent waits for the next event of c and checks its kind.
func waitEvent(ctx context.Context, c *client.Client, want client.EventKind) error {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			return fmt.Errorf("connection ended: %v", c.Err())
		}
		if ev.Kind != want {
			return fmt.Errorf("got %v, want %v", ev, want)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no %v: %w", want, ctx.Err())
	}
}

// dtcallCall runs one call: both parties online, ring, answer, media,
// hang up.
func (r *runner) dtcallCall(ctx context.Context, i int) (out callOutcome) {
	caller := &party{acct: r.accts[2*i], kind: r.kinds(i, true), from: sourceFor(r.optsFor(2*i).Server, 2*i), opts: r.optsFor(2 * i)}
	callee := &party{acct: r.accts[2*i+1], kind: r.kinds(i, false), from: sourceFor(r.optsFor(2*i+1).Server, 2*i+1), opts: r.optsFor(2*i + 1)}
	defer func() {
		for _, p := range []*party{caller, callee} {
			if p.c != nil {
				p.c.Close()
			}
		}
	}()
	var reasons [2]string
	var errs [2]error
	var when [2]time.Time
	var wg sync.WaitGroup
	for j, p := range []*party{caller, callee} {
		wg.Go(func() {
			reasons[j], errs[j] = p.online(ctx, p.opts)
			when[j] = time.Now()
			if !p.login.end.IsZero() {
				r.live.logins.Add(1)
			}
		})
	}
	wg.Wait()
	for _, p := range []*party{caller, callee} {
		if !p.login.end.IsZero() {
			out.logins = append(out.logins, p.login)
		}
	}
	for j, why := range reasons {
		if why != "" {
			out.fail(why, errs[j])
			out.failedAt = when[j]
			return out
		}
	}
	out.setup.start = time.Now()
	if why, err := ring(ctx, caller, callee); why != "" {
		out.fail(why, err)
		return out
	}
	out.setup.end, out.setupOK = time.Now(), true
	r.live.callsUp.Add(1)
	defer r.live.callsUp.Add(-1)
	return r.talk(ctx, caller, callee, out)
}

// ring calls, answers and waits for both parties' start. On failure it
// says which step failed (the reason) and why.
func ring(ctx context.Context, caller, callee *party) (reason string, err error) {
	res, err := caller.c.Call(ctx, callee.acct.name)
	switch {
	case err != nil:
		return "call_error", fmt.Errorf("%s calls %s: %w", caller.acct.name, callee.acct.name, err)
	case res != client.Available:
		return "call_" + res.String(), fmt.Errorf("%s calls %s: the server answers %v", caller.acct.name, callee.acct.name, res)
	}
	if err := waitEvent(ctx, callee.c, client.Incoming); err != nil {
		return "no_incoming", fmt.Errorf("%s, called by %s: %w", callee.acct.name, caller.acct.name, err)
	}
	if err := callee.c.Accept(ctx, caller.acct.name); err != nil {
		return "accept", fmt.Errorf("%s accepts %s: %w", callee.acct.name, caller.acct.name, err)
	}
	for _, p := range []*party{caller, callee} {
		if err := waitEvent(ctx, p.c, client.Started); err != nil {
			return "no_start", fmt.Errorf("%s, call of %s to %s: %w", p.acct.name, caller.acct.name, callee.acct.name, err)
		}
	}
	return "", nil
}

// talk runs the media of an answered call and hangs up. A drop or end
// notice during the media fails the call.
func (r *runner) talk(ctx context.Context, caller, callee *party, out callOutcome) callOutcome {
	mctx, cancel := context.WithCancelCause(ctx)
	var hangingUp atomic.Bool
	endSeen := make(chan struct{})
	var seenOnce sync.Once
	var watchers sync.WaitGroup
	for _, p := range []*party{caller, callee} {
		watchers.Go(func() {
			for ev := range p.c.Events() {
				switch {
				case hangingUp.Load() && ev.Kind == client.Ended:
					seenOnce.Do(func() { close(endSeen) })
				case ev.Kind == client.Dropped || ev.Kind == client.Ended:
					cancel(fmt.Errorf("%v during the call", ev.Kind))
				}
			}
		})
	}
	defer watchers.Wait() // after the Close below: Events closes then
	defer func() {
		caller.c.Close()
		callee.c.Close()
	}()
	out.mediaStart = time.Now()
	if r.p.clock.now() >= r.p.until {
		out.fail("set_up_after_the_end", errSetUpLate)
		cancel(nil)
		return out
	}
	var err error
	out.ab, out.ba, err = runMedia(mctx, r.p, clientMedia{caller.c.Media()}, clientMedia{callee.c.Media()})
	who := caller.acct.name + " and " + callee.acct.name
	switch cause := context.Cause(mctx); {
	case cause != nil && cause != context.Canceled && ctx.Err() == nil:
		out.fail("dropped", fmt.Errorf("%s: %w", who, cause))
	case errors.Is(err, errNoMedia):
		out.fail("no_media", fmt.Errorf("%s: %w", who, err))
	case err != nil && ctx.Err() == nil:
		out.fail("media_error", fmt.Errorf("%s: %w", who, err))
	}
	cancel(nil)
	hangingUp.Store(true)
	hctx, hcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer hcancel()
	if out.reason == "" {
		if err := caller.c.End(hctx, callee.acct.name); err != nil {
			out.note = "end_refused"
		} else {
			select {
			case <-endSeen:
			case <-hctx.Done():
				out.note = "end_not_seen"
			}
		}
	}
	return out
}

// sourceFor is the local address client i connects from: against a server
// on IPv4 loopback, each client gets an address of its own in 127.2.0.0/16,
// standing in for a phone of its own, so that the server's per-source
// limits (connections, handshakes, login queue) see many hosts as in
// production; otherwise "" (any).
func sourceFor(server string, i int) string {
	ip := net.ParseIP(server)
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return ""
	}
	return net.IPv4(127, 2, byte(i>>8), byte(i)).String()
}
