package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/dtcall/dtcall/client"
)

// runConfig is one bounded run: the traffic and the target.
type runConfig struct {
	server                       string
	commandPort, mediaPort, quic int
	pin                          string // file or fingerprint (pinSpec)
	accts                        []account
	calls                        int
	callerT, calleeT             string // tcp, quic, datagram or mixed
	ramp, duration               time.Duration
	frame, rate                  int
	serverPIDs                   []int  // --server-pid: CPU and RSS summed over them
	nodes                        []node // from server and the ports; set by check
	baseline                     bool
	margin                       time.Duration // beyond ramp+duration; 0 = default

	progress io.Writer // live display or periodic lines; nil for none
	tty      bool      // progress is a terminal: a live bar
}

// runner runs the calls of one run.
type runner struct {
	cfg   runConfig
	opts  client.Options   // the first node's
	nodes []client.Options // each node's, pinned
	base  *baseDialer
	accts []account
	p     *mediaParams
	live  *liveCounters

	dialMu sync.Mutex // baseline: a call's two connections arrive in order
}

// transportKinds is the cycle of --transport mixed.
var transportKinds = []client.Transport{client.TCP, client.QUIC, client.QUICDatagram}

// parseTransport maps a flag value to a transport; "mixed" is ok.
func parseTransport(s string) (client.Transport, bool, error) {
	switch s {
	case "tcp":
		return client.TCP, false, nil
	case "quic":
		return client.QUIC, false, nil
	case "datagram":
		return client.QUICDatagram, false, nil
	case "mixed":
		return 0, true, nil
	}
	return 0, false, fmt.Errorf("transport %q: want tcp, quic, datagram or mixed", s)
}

// kinds is the transport of call i's caller or callee. A "mixed" side
// cycles through tcp, quic and datagram; the callee runs one step ahead,
// so that a mixed call pairs different transports.
func (r *runner) kinds(i int, caller bool) client.Transport {
	s, off := r.cfg.calleeT, 1
	if caller {
		s, off = r.cfg.callerT, 0
	}
	t, mixed, _ := parseTransport(s)
	if mixed {
		return transportKinds[(i+off)%len(transportKinds)]
	}
	return t
}

// Failures that are not the server's answer.
var (
	errNotStarted = errors.New("not started: the run ended first (Ctrl-C, or its time bound)")
	errSetUpLate  = errors.New("set up after the end of the media window")
)

// defaultMargin is how long a run may last beyond ramp + duration: set-up
// steps, drain and hang-up.
const defaultMargin = 25 * time.Second

// check validates the configuration.
func (c *runConfig) check() error {
	for _, t := range []string{c.callerT, c.calleeT} {
		if _, mixed, err := parseTransport(t); err != nil {
			return err
		} else if mixed && c.baseline {
			return fmt.Errorf("the baseline pairs connections per listener: mixed transports cannot meet")
		}
	}
	if c.baseline && c.callerT != c.calleeT {
		return fmt.Errorf("the baseline needs the same transport on both sides")
	}
	nodes, err := parseNodes(c.server, c.commandPort, c.mediaPort, c.quic)
	if err != nil {
		return err
	}
	c.nodes = nodes
	switch {
	case c.baseline && len(nodes) > 1:
		return fmt.Errorf("the baseline is one forwarder: give one --server")
	case c.calls < 1:
		return fmt.Errorf("--calls must be at least 1")
	case !c.baseline && 2*c.calls > len(c.accts):
		return fmt.Errorf("%d calls need %d accounts, the accounts file has %d", c.calls, 2*c.calls, len(c.accts))
	case c.frame < frameHeader:
		return fmt.Errorf("--frame must be at least %d bytes", frameHeader)
	case c.frame > 1100:
		return fmt.Errorf("--frame must fit a QUIC datagram (at most 1100 bytes)")
	case c.rate < 1 || c.rate > 1000:
		return fmt.Errorf("--rate must be 1..1000 frames/s")
	case c.duration <= 0 || c.ramp < 0:
		return fmt.Errorf("--duration must be positive and --ramp not negative")
	}
	return nil
}

// run performs one bounded run and returns its report. ctx ending (Ctrl-C)
// stops the calls early; the report then says interrupted.
func run(ctx context.Context, cfg runConfig) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, accts: cfg.accts, live: &liveCounters{}}
	if err := r.target(); err != nil {
		return nil, err
	}
	margin := cfg.margin
	if margin == 0 {
		margin = defaultMargin
	}
	rctx, cancel := context.WithTimeout(ctx, cfg.ramp+cfg.duration+margin)
	defer cancel()
	watch := newProcWatch(cfg.serverPIDs)
	clk := newClock()
	r.p = &mediaParams{
		clock: clk, frame: cfg.frame, every: time.Second / time.Duration(cfg.rate),
		until: int64(cfg.ramp + cfg.duration), steady: int64(cfg.ramp), live: r.live,
	}
	stopProgress := r.showProgress(watch, clk)
	outs := r.startCalls(rctx, clk, watch)
	stopProgress()
	rep := r.report(outs, clk, watch)
	rep.Interrupted = ctx.Err() != nil
	return rep, nil
}

// target fills the client options or the baseline dialer.
func (r *runner) target() error {
	c := r.cfg
	p, err := parsePin(c.pin)
	if err != nil {
		return err
	}
	if err := p.load(); err != nil { // a clear error before any call
		return err
	}
	if len(c.nodes) == 0 {
		if c.nodes, err = parseNodes(c.server, c.commandPort, c.mediaPort, c.quic); err != nil {
			return err
		}
	}
	if c.baseline {
		n := c.nodes[0]
		r.base = &baseDialer{host: n.host, tcpPort: n.command, quicPort: n.quic, pin: p, run: newRunName()}
		return nil
	}
	r.nodes = make([]client.Options, len(c.nodes))
	for i, n := range c.nodes {
		r.nodes[i] = n.options()
		p.setOptions(&r.nodes[i])
	}
	r.opts = r.nodes[0]
	return nil
}

// optsFor are the options of client k: its node's (nodeOf).
func (r *runner) optsFor(k int) client.Options { return r.nodes[nodeOf(k, len(r.nodes))] }

// clientOptions are the first node's client options, without the pin.
func (c *runConfig) clientOptions() client.Options {
	nodes, err := parseNodes(c.server, c.commandPort, c.mediaPort, c.quic)
	if err != nil {
		return client.Options{Server: c.server, CommandPort: c.commandPort, MediaPort: c.mediaPort, QUICPort: c.quic}
	}
	return nodes[0].options()
}

// startCalls starts call i at i*ramp/calls and waits for all. The media
// window's CPU samples are taken at the end of the ramp and of the
// duration.
func (r *runner) startCalls(ctx context.Context, clk clock, watch *procWatch) []callOutcome {
	outs := make([]callOutcome, r.cfg.calls)
	var wg sync.WaitGroup
	for i := range r.cfg.calls {
		at := time.Duration(0)
		if r.cfg.calls > 1 {
			at = r.cfg.ramp * time.Duration(i) / time.Duration(r.cfg.calls)
		}
		wg.Go(func() {
			if !sleepUntil(ctx, clk.start.Add(at)) {
				outs[i].fail("not_started", errNotStarted)
				return
			}
			if r.base != nil {
				outs[i] = r.baselineCall(ctx, i)
			} else {
				outs[i] = r.dtcallCall(ctx, i)
			}
			if outs[i].reason != "" {
				r.live.callsFailed.Add(1)
			}
			r.live.callsDone.Add(1)
		})
	}
	wg.Go(func() {
		if sleepUntil(ctx, clk.start.Add(r.cfg.ramp)) {
			watch.windowStart()
			sleepUntil(ctx, clk.start.Add(r.cfg.ramp+r.cfg.duration))
		} else {
			watch.windowStart()
		}
		watch.windowEnd()
	})
	wg.Wait()
	return outs
}

// sleepUntil sleeps until t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// baselineCall runs one call against the forwarder: two connections in
// order, media, close.
func (r *runner) baselineCall(ctx context.Context, i int) (out callOutcome) {
	out.setup.start = time.Now()
	r.dialMu.Lock()
	a, err := r.base.dial(ctx, r.kinds(i, true), i)
	var b mediaEnd
	if err == nil {
		if b, err = r.base.dial(ctx, r.kinds(i, false), i); err != nil {
			a.(io.Closer).Close()
		}
	}
	r.dialMu.Unlock()
	if err != nil {
		out.fail("dial", fmt.Errorf("baseline over %v: %w", r.kinds(i, true), err))
		return out
	}
	defer a.(io.Closer).Close()
	defer b.(io.Closer).Close()
	out.setup.end, out.setupOK = time.Now(), true
	r.live.callsUp.Add(1)
	defer r.live.callsUp.Add(-1)
	out.mediaStart = time.Now()
	if r.p.clock.now() >= r.p.until {
		out.fail("set_up_after_the_end", errSetUpLate)
		return out
	}
	out.ab, out.ba, err = runMedia(ctx, r.p, a, b)
	switch {
	case err == errNoMedia:
		out.fail("no_media", err)
	case err != nil && ctx.Err() == nil:
		out.fail("media_error", err)
	}
	return out
}

// report folds the calls' outcomes into a Report.
func (r *runner) report(outs []callOutcome, clk clock, watch *procWatch) *Report {
	c := r.cfg
	rep := &Report{
		Mode: "dtcall", Server: c.server, Calls: c.calls, CrossNode: len(c.nodes) > 1,
		CallerTransport: c.callerT, CalleeTransport: c.calleeT,
		RampS: c.ramp.Seconds(), DurationS: c.duration.Seconds(),
		FrameBytes: c.frame, Rate: c.rate, ElapsedS: time.Since(clk.start).Seconds(),
		FailReasons: map[string]int{}, Notes: map[string]int{},
	}
	if c.baseline {
		rep.Mode = "baseline"
	}
	for _, n := range c.nodes {
		rep.Nodes = append(rep.Nodes, n.String())
	}
	var dirs []*direction
	var logins, setups []int64
	var loginFirst, loginLast, setupFirst, setupLast, mediaFirst time.Time
	widen := func(first, last *time.Time, s span) {
		if first.IsZero() || s.start.Before(*first) {
			*first = s.start
		}
		if s.end.After(*last) {
			*last = s.end
		}
	}
	var first *callOutcome
	for i, o := range outs {
		if o.reason == "" {
			rep.CallsOK++
		} else {
			rep.CallsFailed++
			rep.FailReasons[o.reason]++
			if first == nil || o.failedAt.Before(first.failedAt) {
				first = &outs[i]
				rep.FirstError = newFailure(i, o.reason, o.err, o.failedAt.Sub(clk.start))
			}
		}
		if o.note != "" {
			rep.Notes[o.note]++
		}
		for _, l := range o.logins {
			logins = append(logins, int64(l.dur()))
			widen(&loginFirst, &loginLast, l)
		}
		if o.setupOK {
			setups = append(setups, int64(o.setup.dur()))
			widen(&setupFirst, &setupLast, o.setup)
		}
		if !o.mediaStart.IsZero() && (mediaFirst.IsZero() || o.mediaStart.Before(mediaFirst)) {
			mediaFirst = o.mediaStart
		}
		for _, d := range []*direction{o.ab, o.ba} {
			if d != nil {
				dirs = append(dirs, d)
			}
		}
	}
	mediaEnd := clk.start.Add(time.Duration(r.p.until))
	if now := time.Now(); now.Before(mediaEnd) {
		mediaEnd = now // interrupted
	}
	var window time.Duration
	if !mediaFirst.IsZero() && mediaEnd.After(mediaFirst) {
		window = mediaEnd.Sub(mediaFirst)
	}
	rep.addMedia(dirs, window)
	rep.Logins, rep.LoginsPerSec, rep.LoginMS = len(logins), rate(len(logins), loginFirst, loginLast), percentiles(logins)
	rep.Setups, rep.SetupsPerSec, rep.SetupMS = len(setups), rate(len(setups), setupFirst, setupLast), percentiles(setups)
	if !setupLast.IsZero() {
		rep.LastCallUpS = setupLast.Sub(clk.start).Seconds()
	}
	watch.fill(rep)
	return rep
}
