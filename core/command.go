package core

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/wire"
)

// commandConn is one client's command channel: a read loop that runs the
// commands and a write loop that sends the replies queued for it. The
// write loop runs only while there is something to write or a call to
// probe: an idle client, logged in or not, costs one goroutine (its
// reader), not two.
type commandConn struct {
	srv  *Server
	conn transport.Conn
	gate *gate // conn's closed mark; only ServeCommand closes conn
	log  *slog.Logger
	out  replies // written in order by writeLoop

	writer onDemand // runs writeLoop while replies wait or a call is probed

	finishOnce sync.Once
	finishing  atomic.Bool // closing once the queue is out; see finish
	slow       atomic.Bool // marked closed for a full reply queue; ServeCommand logs it

	// prober is conn if its transport can probe the peer; the writer then
	// probes it while inCall (see transport.Prober).
	prober      transport.Prober
	inCall      atomic.Bool   // the session is in an answered call
	callChanged chan struct{} // wakes writeLoop when inCall changes

	sess  *Session // owned by readLoop; nil until login
	limit limiter  // owned by readLoop

	lastCommand atomic.Int64 // when readLoop last read a command (not a keepalive), Unix ns; see settlingLocked
}

// ServeCommand serves one command connection until it ends, then ends its
// session (the other party of a call is told). It closes c, with no lock
// held: whoever else ends the connection only marks it closed.
func (s *Server) ServeCommand(ctx context.Context, c transport.Conn) {
	// This goroutine waits in readLoop for the connection's whole life, so
	// its frames stay small: the setup and the end are functions of their
	// own (see apart).
	cc := s.newCommandConn(c)
	if !s.track(c, cc.gate, cc) {
		c.Close()
		return
	}
	defer s.untrack(c)
	stop := context.AfterFunc(ctx, cc.markClosed)
	defer stop()
	cc.end(cc.readLoop(ctx))
}

func (s *Server) newCommandConn(c transport.Conn) *commandConn {
	cc := &commandConn{
		srv:   s,
		conn:  c,
		gate:  newGate(c),
		log:   s.log.With("peer", c.RemoteAddr().Addr().String()),
		out:   newReplies(s.cfg.ReplyQueue),
		limit: newLimiter(s.cfg.CommandBurst, s.cfg.CommandRate),
	}
	if p, ok := c.(transport.Prober); ok {
		cc.prober = p
		cc.callChanged = make(chan struct{}, 1)
	}
	return cc
}

// end ends the connection after its read loop returned err.
func (c *commandConn) end(err error) {
	c.markClosed()
	if c.slow.Load() {
		c.log.Warn("reply queue full; disconnected slow client", "tag", "conn", "dir", "error")
	}
	c.ended(err)   // first: the other party of a call hears at once, however long Close takes
	c.conn.Close() // also ends a write that ignores deadlines
	c.writer.stop()
}

// wake starts writeLoop unless one runs (or the connection is ending). It
// never blocks: safe with Server.mu held.
func (c *commandConn) wake() { c.writer.start(c.writeLoop) }

// idle ends writeLoop if nothing is queued and no call needs probes; it
// reports whether it did. A send or setInCall after it starts a new one.
func (c *commandConn) idle() bool {
	return c.writer.retire(func() bool { return c.out.len() == 0 && !c.inCall.Load() })
}

// markClosed marks the connection closed; both loops then end and
// ServeCommand closes it. It never blocks: safe with Server.mu held, any
// number of times, from any goroutine.
func (c *commandConn) markClosed() { c.gate.close() }

// finish closes the connection once the replies queued before it are
// written, so that a last notice reaches the client (each write within
// WriteTimeout). It never blocks; a full queue closes at once.
func (c *commandConn) finish() {
	c.finishOnce.Do(func() {
		c.finishing.Store(true)
		if c.out.push(nil) { // writeLoop closes when it gets here
			c.wake()
		} else {
			c.markClosed()
		}
	})
}

// send queues msg. It never blocks: a client whose queue is full is not
// reading its replies and is disconnected (commands are never dropped).
func (c *commandConn) send(msg []byte) {
	if c.out.push(msg) {
		c.wake()
		return
	}
	if !c.slow.Swap(true) {
		c.srv.metrics.slowConsumers.Add(1)
	}
	c.markClosed()
}

// crowded reports whether the reply queue is more than half full. The
// switchboard then refuses to queue there a notice that another session
// would cause (a call is answered busy instead): only a client's own
// commands and its own slowness can fill the rest and get it
// disconnected as a slow consumer.
func (c *commandConn) crowded() bool { return c.out.len() > c.out.max/2 }

// setInCall records whether the session is in an answered call, for the
// writer's probes. It never blocks; Server.mu is held.
func (c *commandConn) setInCall(on bool) {
	if c.prober == nil || c.inCall.Swap(on) == on {
		return
	}
	select {
	case c.callChanged <- struct{}{}:
	default: // a wake-up is pending; it reads the new state
	}
	c.wake()
}

// writeLoop writes queued replies, one message per write, each within the
// write timeout. During a call it also probes a Prober every
// transport.ProbeInterval. It ends when the queue is empty outside a call
// (wake starts it again) or when the connection is marked closed.
func (c *commandConn) writeLoop() {
	var probes *time.Ticker
	var tick <-chan time.Time
	defer func() {
		if probes != nil {
			probes.Stop()
		}
	}()
	for {
		if probes == nil && len(c.callChanged) == 0 && c.out.len() == 0 && c.idle() {
			return
		}
		if c.gate.closed() {
			return
		}
		if msg, ok := c.out.pop(); ok {
			if msg == nil { // finish
				c.markClosed()
				return
			}
			c.gate.setWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
			if err := c.conn.WriteMessage(msg); err != nil {
				c.writeFailed("reply write failed", err)
				return
			}
			continue
		}
		select {
		case <-c.out.more: // queued since: pop it
		case <-c.callChanged:
			switch on := c.inCall.Load(); {
			case on && probes == nil:
				probes = time.NewTicker(transport.ProbeInterval)
				tick = probes.C
			case !on && probes != nil:
				probes.Stop()
				probes, tick = nil, nil
			}
		case <-tick:
			c.gate.setWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
			if err := c.prober.Probe(); err != nil {
				if !c.gate.closed() {
					c.srv.metrics.unresponsive.Add(1)
					c.log.Info("client unresponsive during a call; closing", "tag", "conn", "dir", "error", "err", err)
				}
				c.markClosed()
				return
			}
		case <-c.gate.done:
			return
		}
	}
}

// writeFailed ends the connection after a failed reply write. A write that
// failed because the connection was marked closed is no failure.
func (c *commandConn) writeFailed(what string, err error) {
	if !c.gate.closed() {
		c.srv.metrics.writeFailures.Add(1)
		c.log.Debug(what, "tag", "conn", "dir", "error", "err", err)
	}
	c.markClosed()
}

// readLoop reads and runs commands until the connection fails or closes.
// Before login the connection has LoginTimeout in all; after it, each
// message must come within IdleTimeout of the last. Commands beyond the
// rate limit are refused, and a sustained flood closes the connection.
func (c *commandConn) readLoop(ctx context.Context) error {
	c.gate.setReadDeadline(time.Now().Add(c.srv.cfg.LoginTimeout))
	for {
		msg, err := c.conn.ReadMessage()
		if err != nil {
			return readError(c.gate, err)
		}
		if c.sess != nil {
			c.gate.setReadDeadline(c.srv.idleDeadline(c.conn))
		}
		if wire.IsKeepalive(msg) {
			continue
		}
		now := time.Now()
		c.lastCommand.Store(now.UnixNano())
		switch c.limit.take(now) {
		case allowed:
			apart(func() { c.handle(ctx, msg) }) // this goroutine's stack stays small
		case limited:
			c.srv.metrics.rateLimited.Add(1)
			c.invalid("over the command rate limit", nil)
		case flooding:
			c.flooded()
			return errFlood
		}
	}
}

// flooded counts and logs a flood that closes the connection.
func (c *commandConn) flooded() {
	c.srv.metrics.rateLimited.Add(1)
	c.srv.metrics.flooders.Add(1)
	log := c.log
	if c.sess != nil {
		log = c.sess.log
	}
	log.Warn("command flood; closing the sender's connection", "tag", "conn", "dir", "error",
		"refused", c.limit.refused, "within", floodWindow)
}

// errFlood ends a connection that keeps sending over its rate limit.
var errFlood = errors.New("command flood")

// errMarked is why a read loop ends whose connection was marked closed.
var errMarked = errors.New("closed by the server")

// readError is err, or errMarked if g was shut: a read failed by the mark's
// deadline is no idle timeout.
func readError(g *gate, err error) error {
	if g.closed() {
		return errMarked
	}
	return err
}

// handle runs one command message.
func (c *commandConn) handle(ctx context.Context, msg []byte) {
	s := c.srv
	cmd, err := wire.ParseCommand(msg)
	switch {
	case err != nil && c.sess != nil:
		c.invalid("malformed command", err)
	case err != nil:
		// Before login, anything malformed is a failed login, on record
		// before the reply goes out: a client that has its answer also has
		// its failure counted.
		s.cfg.Bans.Failed(c.conn.RemoteAddr().Addr())
		c.log.Info("login failed", "tag", "login", "dir", "inbound", "why", "malformed command")
		c.invalid("malformed command", err)
		c.pause(ctx, s.cfg.ThrottledPause) // costs no check, so no flood of them either
	case !s.fresh(cmd.Time):
		if cmd.Verb == wire.Login {
			s.metrics.login(LoginInvalid)
		}
		c.invalid("timestamp outside the window", nil)
	case cmd.Verb == wire.Login:
		c.login(ctx, cmd)
	case c.sess == nil:
		c.invalid(cmd.Verb.String()+" before login", nil)
	case cmd.Session != c.sess.id:
		c.invalid(cmd.Verb.String()+" with a session id not of this connection", nil)
	case cmd.Verb == wire.Lookup:
		c.send(wire.LookupReply(s.now(), cmd.Arg, s.accounts.Exists(cmd.Arg)))
	default:
		if cmd.Verb == wire.Call {
			s.resolveCallee(ctx, cmd.Arg)
		}
		s.mu.Lock()
		refusal := s.dispatchLocked(c.sess, cmd)
		s.unlock()
		if refusal != "" {
			c.invalid(cmd.Verb.String()+": "+refusal, nil)
		}
	}
}

// invalid answers a refused command. why goes to the debug log only.
func (c *commandConn) invalid(why string, err error) {
	c.srv.metrics.invalid.Add(1)
	c.log.Debug("refused command", "tag", "command", "dir", "inbound", "why", why, "err", err)
	c.send(wire.InvalidReply(c.srv.now()))
}

// login checks the password off the core's lock (scrypt is slow and its
// checks are bounded by Accounts), then starts the session. A wrong password
// never touches the user's existing session. A login from a banned source
// is refused at once and its connection closed; a failed one is reported
// to the autoban. The log lines "login failed" and "login refused: source
// banned" carry the peer's address first, for fail2ban.
func (c *commandConn) login(ctx context.Context, cmd wire.Command) {
	s := c.srv
	if c.sess != nil {
		s.metrics.login(LoginInvalid)
		c.invalid("login on a connection that is logged in already", nil)
		return
	}
	source := c.conn.RemoteAddr().Addr()
	if !s.cfg.Bans.Allow(source) {
		s.metrics.loginsRefused.Add(1)
		s.metrics.login(LoginBanned)
		c.log.Info("login refused: source banned", "tag", "login", "dir", "inbound", "user", cmd.Arg)
		c.invalid("login from a banned source", nil)
		c.finish()
		return
	}
	actx, cancel := context.WithTimeout(ctx, s.cfg.LoginTimeout)
	start := time.Now()
	err := s.accounts.Authenticate(actx, source, cmd.Arg, cmd.Password)
	s.metrics.loginCheck.observe(time.Since(start))
	cancel()
	if err != nil {
		s.metrics.loginsRefused.Add(1)
		if !throttled(err) {
			s.metrics.login(LoginBadCredentials)
			s.cfg.Bans.Failed(source)
			c.log.Info("login failed", "tag", "login", "dir", "inbound", "user", cmd.Arg, "err", err)
			c.invalid("login refused", err)
			return
		}
		s.metrics.login(LoginThrottled)
		c.log.Debug("login throttled", "tag", "login", "dir", "inbound", "user", cmd.Arg, "err", err)
		c.invalid("login refused", err)
		c.pause(ctx, s.cfg.ThrottledPause)
		return
	}
	s.mu.Lock()
	switch {
	case s.closing:
		s.unlock()
		s.metrics.login(LoginInvalid)
		c.invalid("login while shutting down", ErrClosed)
		return
	case c.gate.closed(): // closed during the check: don't replace a live session with it
		s.unlock()
		return
	}
	s.metrics.loginsOK.Add(1) // before the reply is queued: a client that has it sees it counted
	s.metrics.login(LoginOK)
	c.sess = s.startSessionLocked(c, cmd.Arg)
	s.unlock()
	c.sess.log.Info("logged in", "tag", "login", "dir", "inbound")
	c.gate.setReadDeadline(s.idleDeadline(c.conn))
}

// pause waits for d, or until the connection or ctx ends, before the read
// loop reads on.
func (c *commandConn) pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.gate.done:
	case <-ctx.Done():
	}
}

// throttled reports whether err says a password was not checked for load:
// the check queue refused it, or ctx ended first.
func throttled(err error) bool {
	var t interface{ Throttled() bool }
	return errors.As(err, &t) && t.Throttled() ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// idleDeadline is the read deadline of a logged-in channel: IdleTimeout
// from now, or none where the transport watches the peer itself.
func (s *Server) idleDeadline(c transport.Conn) time.Time {
	if _, ok := c.(transport.KeptAlive); ok {
		return time.Time{}
	}
	return time.Now().Add(s.cfg.IdleTimeout)
}

// ended runs once the connection is gone: the session ends with it.
func (c *commandConn) ended(err error) {
	if c.sess == nil {
		return
	}
	s := c.srv
	s.mu.Lock()
	wasLive := !c.sess.ended
	s.endSessionLocked(c.sess)
	s.unlock()
	if wasLive {
		c.sess.log.Info("logged out", "tag", "login", "dir", "system", "reason", connEndReason(err))
	}
}

// connEndReason describes why a read loop ended, for logs.
func connEndReason(err error) string {
	var te interface{ Timeout() bool }
	switch {
	case err == nil:
		return "closed"
	case errors.Is(err, errFlood), errors.Is(err, errMarked):
		return err.Error()
	case errors.As(err, &te) && te.Timeout():
		return "idle timeout"
	default:
		return err.Error()
	}
}
