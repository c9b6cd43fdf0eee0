package core

import (
	"log/slog"

	"github.com/dtcall/dtcall/wire"
)

// This file is the call state machine. Every function here runs with
// Server.mu held, does no I/O, tells parties by queueing replies and logs
// through logLocked (the lines are written once the lock is released).
//
// The notices one session causes for another are bounded: a session is in
// one call at a time, each call brings it at most two notices that the
// other party causes (ring|incoming then call|end or ring|timeout, or
// call|start then call|end or call|drop), and a call to a session whose
// reply queue is more than half full is answered busy.
// So another session cannot fill a client's reply queue and get it cut off
// as a slow consumer.
//
// A session is idle (call == nil), ringing (call not answered; caller or
// callee) or in a call (call answered). Transitions:
//
//	idle   --call-->          ringing  caller: ring|available, callee: ring|incoming
//	ringing --accept(callee)-> in call  caller: call|start, callee: call|start
//	ringing --reject(callee)-> idle     caller: call|reject
//	ringing --timeout(caller)> idle     callee: ring|timeout
//	ringing --end(caller)-->   idle     callee: call|end
//	in call --end(either)-->   idle     other:  call|end
//	ringing --party gone-->    idle     other:  call|end|<who left>
//	in call --party gone-->    idle     other:  call|drop|<other's own session id>

// dispatchLocked runs a call command of sess. It returns "" when the command
// was carried out, or why it was refused (the caller answers invalid).
func (s *Server) dispatchLocked(sess *Session, cmd wire.Command) string {
	if sess.ended {
		return "session has ended"
	}
	switch cmd.Verb {
	case wire.Call:
		return s.placeCallLocked(sess, cmd.Arg)
	case wire.Accept:
		return s.acceptLocked(sess, cmd.Arg)
	case wire.Reject:
		return s.rejectLocked(sess, cmd.Arg)
	case wire.End:
		return s.hangUpLocked(sess, cmd.Arg)
	case wire.Timeout:
		return s.giveUpLocked(sess, cmd.Arg)
	}
	return "not a call command"
}

// placeCallLocked rings callee for caller.
func (s *Server) placeCallLocked(caller *Session, callee string) string {
	now := s.now()
	switch {
	case caller.media == nil:
		return "caller has no media connection"
	case caller.call != nil:
		return "caller is ringing or in a call already"
	case s.closing:
		return "server shutting down"
	case callee == caller.user:
		caller.send(wire.Reply(now, wire.KindRing, wire.SubBusy, callee))
		return ""
	}
	loc, online := s.cfg.Directory.Lookup(callee)
	if online && s.isRemote(loc) {
		s.ringRemoteLocked(caller, callee, loc)
		return ""
	}
	other := s.sessions[loc.Session]
	switch {
	case !online || other == nil || other.media == nil:
		s.metrics.call(CallNotAvailable)
		caller.send(wire.Reply(now, wire.KindRing, wire.SubNotAvailable, callee))
	case other.call != nil:
		s.metrics.call(CallBusy)
		caller.send(wire.Reply(now, wire.KindRing, wire.SubBusy, callee))
	case other.crowded():
		s.metrics.call(CallBusy)
		s.metrics.crowded.Add(1)
		caller.send(wire.Reply(now, wire.KindRing, wire.SubBusy, callee))
	default:
		c := &call{caller: caller, callee: other}
		caller.call, other.call = c, c
		caller.send(wire.Reply(now, wire.KindRing, wire.SubAvailable, callee))
		other.send(wire.Reply(now, wire.KindRing, wire.SubIncoming, caller.user))
		s.logLocked(caller.log, slog.LevelInfo, "ringing", "tag", "call", "dir", "inbound", "callee", callee)
	}
	return ""
}

// tellLocked gives party p of c a notice that the other party caused:
// queued to a local session, sent to a remote party's node (which applies
// it to its half of the call, see HandleSignal).
func (s *Server) tellLocked(c *call, p *Session, kind, sub, arg string) {
	if p.remote == nil {
		p.send(wire.Reply(s.now(), kind, sub, arg))
		return
	}
	from := c.other(p)
	s.signalLocked(p.remote.node, Signal{
		Kind: SigNotice, Call: c.id,
		From: from.id, FromUser: from.user, To: p.id, ToUser: p.user,
		Notice: kind + "|" + sub,
	})
}

// ringingFor returns sess's unanswered call if the other party is named peer
// and sess is on the wanted side of it (callee or caller), else nil.
func ringingFor(sess *Session, peer string, asCallee bool) *call {
	c := sess.call
	if c == nil || c.answered || (c.callee == sess) != asCallee || c.other(sess).user != peer {
		return nil
	}
	return c
}

// acceptLocked answers the call from caller. Only the callee can accept.
func (s *Server) acceptLocked(callee *Session, caller string) string {
	c := ringingFor(callee, caller, true)
	if c == nil {
		return "no call ringing from " + caller
	}
	c.answered = true
	s.metrics.call(CallAnswered)
	s.calls++
	s.metrics.activeCalls.Add(1)
	s.metrics.callsStarted.Add(1)
	s.relayLocked(c)
	s.tellLocked(c, c.caller, wire.KindCall, wire.SubStart, callee.user)
	c.callee.send(wire.Reply(s.now(), wire.KindCall, wire.SubStart, caller))
	s.logLocked(callee.log, slog.LevelInfo, "call started", "tag", "call", "dir", "inbound", "caller", caller)
	return ""
}

// rejectLocked declines the call from caller. Only the callee can reject.
func (s *Server) rejectLocked(callee *Session, caller string) string {
	c := ringingFor(callee, caller, true)
	if c == nil {
		return "no call ringing from " + caller
	}
	s.clearCallLocked(c)
	s.metrics.call(CallRejected)
	s.tellLocked(c, c.caller, wire.KindCall, wire.SubReject, callee.user)
	return ""
}

// giveUpLocked is the caller's timeout while the call still rings.
func (s *Server) giveUpLocked(caller *Session, callee string) string {
	c := ringingFor(caller, callee, false)
	if c == nil {
		return "no call ringing to " + callee
	}
	s.clearCallLocked(c)
	s.metrics.call(CallTimeout)
	s.tellLocked(c, c.callee, wire.KindRing, wire.SubTimeout, caller.user)
	return ""
}

// hangUpLocked ends an answered call (either party) or cancels a ringing
// one (caller only). The other party is told call|end|<sess>.
func (s *Server) hangUpLocked(sess *Session, other string) string {
	c := sess.call
	if c == nil || c.other(sess).user != other || (!c.answered && c.caller != sess) {
		return "no call with " + other
	}
	s.clearCallLocked(c)
	s.countEndLocked(c, EndHangup)
	s.tellLocked(c, c.other(sess), wire.KindCall, wire.SubEnd, sess.user)
	s.logLocked(sess.log, slog.LevelInfo, "call ended", "tag", "call", "dir", "inbound", "peer_user", other)
	return ""
}

// leaveCallLocked ends sess's call because sess is gone (connection died,
// session replaced) and tells the other party.
func (s *Server) leaveCallLocked(sess *Session) {
	c := sess.call
	other := c.other(sess)
	s.clearCallLocked(c)
	s.countEndLocked(c, EndDrop)
	if c.answered {
		s.tellLocked(c, other, wire.KindCall, wire.SubDrop, other.id.String())
	} else {
		s.tellLocked(c, other, wire.KindCall, wire.SubEnd, sess.user)
	}
	s.logLocked(other.log, slog.LevelInfo, "call partner left", "tag", "call", "dir", "system", "peer_user", sess.user, "answered", c.answered)
}

// relayLocked starts relaying the media of answered call c.
func (s *Server) relayLocked(c *call) {
	if c.id != 0 {
		s.relayRemoteLocked(c)
	}
	c.caller.relayTo.Store(c.callee)
	c.callee.relayTo.Store(c.caller)
	c.caller.setInCall(true)
	c.callee.setInCall(true)
}

// clearCallLocked returns both parties of c to idle and stops the relay.
func (s *Server) clearCallLocked(c *call) {
	c.caller.call, c.callee.call = nil, nil
	c.caller.relayTo.Store(nil)
	c.callee.relayTo.Store(nil)
	if c.answered {
		c.caller.setInCall(false)
		c.callee.setInCall(false)
		s.calls--
		s.metrics.activeCalls.Add(-1)
	}
	if c.id != 0 {
		s.forgetRemoteLocked(c)
	}
}

// countEndLocked counts how c ended: an answered call by reason, a ringing
// one as cancelled.
func (s *Server) countEndLocked(c *call, r EndReason) {
	if c.answered {
		s.metrics.ended(r)
	} else {
		s.metrics.call(CallCancelled)
	}
}
