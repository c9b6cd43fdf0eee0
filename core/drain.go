package core

import (
	"context"
	"time"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/wire"
)

// Draining (lame-duck mode, as nats-server's): Shutdown stops new logins and
// calls, closes every session that is not in an answered call at once (its
// client reconnects elsewhere), lets the calls in progress go on and closes
// each of their sessions when its call ends. When the drain's context ends
// first, the calls still up are ended with a notice (call|drop|<own sid> to
// each party) and everything is closed.

// drainCheck is how often a drain looks for sessions whose call ended.
const drainCheck = 100 * time.Millisecond

// flushWait bounds how long Shutdown waits, after the last call, for the
// last notices to be written before it closes what is left.
const flushWait = 2 * time.Second

// A session whose call ends during the drain is retired once its client
// has sent no command for drainQuiet, or drainSettle after the drain first
// found it so, whichever comes first; see settlingLocked.
const (
	drainQuiet  = 500 * time.Millisecond
	drainSettle = 2 * time.Second
)

// Shutdown drains the server until no call is left or ctx ends, whichever
// comes first, then closes every connection. It logs the drain's progress.
// It does not wait for ServeCommand and ServeMedia to return; their callers
// (the fronts) do. Shutdown may be called again (a second signal): the
// later call's ctx ends the drain as well.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	for _, sess := range s.sessions {
		sess.drainCall = sess.call != nil && sess.call.answered
	}
	s.mu.Unlock()
	tick := time.NewTicker(drainCheck)
	defer tick.Stop()
	lastLeft := -1
	for {
		left, settling := s.retireIdle()
		if left == 0 && settling == 0 {
			break
		}
		if left != lastLeft && left > 0 {
			s.log.Info("draining: waiting for calls to end", "tag", "system", "dir", "system", "calls_left", left)
			lastLeft = left
		}
		select {
		case <-tick.C:
			continue
		case <-ctx.Done():
			n := s.endCallsForShutdown()
			s.log.Warn("drain time is up: ended the calls still in progress", "tag", "system", "dir", "system", "calls", n)
		}
		break
	}
	s.closeAll()
}

// Draining reports whether Shutdown has begun.
func (s *Server) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// retireIdle ends every session that is not in an answered call (but lets
// those whose call just ended settle), closes every connection that
// belongs to none of the sessions left, and returns how many calls are
// still up and how many sessions settle.
func (s *Server) retireIdle() (left, settling int) {
	s.mu.Lock()
	var done []*commandConn
	now := time.Now()
	for _, sess := range s.sessions {
		if sess.call == nil || !sess.call.answered {
			if s.settlingLocked(sess, now) {
				settling++
				continue
			}
			s.endSessionLocked(sess)
			sess.cmd.finishing.Store(true)
			done = append(done, sess.cmd)
		}
	}
	s.closeStrayLocked()
	left = s.calls
	s.unlock()
	finishAll(done)
	return left, settling
}

// settlingLocked reports whether the drain should leave sess open a little
// longer: its call ended during the drain and its client sent a command
// less than drainQuiet ago, so more may follow that was sent with it.
// Package client follows "end" with a "lookup" whose reply tells it the
// end went through; retired between the two, the session's connection
// closed before that reply and the client's hang-up failed. It settles for
// drainSettle at most.
func (s *Server) settlingLocked(sess *Session, now time.Time) bool {
	if !sess.drainCall || now.Sub(time.Unix(0, sess.cmd.lastCommand.Load())) >= drainQuiet {
		return false
	}
	if sess.settling.IsZero() {
		sess.settling = now
	}
	return now.Sub(sess.settling) < drainSettle
}

// endCallsForShutdown ends every call still up: each party is told
// call|drop|<own sid>, and the sessions close once that is written. It
// returns how many calls it ended.
func (s *Server) endCallsForShutdown() int {
	s.mu.Lock()
	n := 0
	var done []*commandConn
	for _, sess := range s.sessions {
		// Each call once: from its caller's side, or its callee's when the
		// caller is on another node.
		if c := sess.call; c != nil && c.answered && (c.caller == sess || c.caller.remote != nil) {
			s.clearCallLocked(c)
			s.metrics.ended(EndShutdown)
			for _, p := range []*Session{c.caller, c.callee} {
				s.tellLocked(c, p, wire.KindCall, wire.SubDrop, p.id.String())
			}
			n++
		}
	}
	for _, sess := range s.sessions {
		s.endSessionLocked(sess)
		sess.cmd.finishing.Store(true)
		done = append(done, sess.cmd)
	}
	s.closeStrayLocked()
	s.unlock()
	finishAll(done)
	return n
}

// closeStrayLocked marks closed the open connections that belong to no live
// session and are no command channel closing after its last notices (see
// commandConn.finish): not logged in yet, media not registered, or left
// behind. (Callers mark the command channels they will finish before
// they call it.)
func (s *Server) closeStrayLocked() {
	live := make(map[transport.Conn]bool, 2*len(s.sessions))
	for _, sess := range s.sessions {
		live[sess.cmd.conn] = true
		if sess.media != nil {
			live[sess.media.conn] = true
		}
	}
	for c, t := range s.conns {
		if !live[c] && (t.cmd == nil || !t.cmd.finishing.Load()) {
			t.gate.close()
		}
	}
}

// finishAll closes the command channels once their queued replies are out.
func finishAll(cmds []*commandConn) {
	for _, c := range cmds {
		c.finish()
	}
}

// closeAll gives the last notices up to flushWait to be written, then
// marks every connection still open closed (their goroutines close them).
func (s *Server) closeAll() {
	deadline := time.Now().Add(flushWait)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	for _, t := range s.conns {
		t.gate.close()
	}
	s.mu.Unlock()
}

// LogOutRemoved ends the sessions of users that no longer exist (a reloaded
// users file): their calls end with the usual notice to the other party,
// and their connections close. It returns how many it logged out.
func (s *Server) LogOutRemoved() int {
	s.mu.Lock()
	var gone []*Session
	for _, sess := range s.sessions {
		if !s.accounts.Exists(sess.user) {
			s.endSessionLocked(sess)
			gone = append(gone, sess)
		}
	}
	s.unlock()
	for _, sess := range gone {
		sess.log.Info("account removed from the users file; logged out", "tag", "login", "dir", "system")
		sess.cmd.finish()
	}
	return len(gone)
}
