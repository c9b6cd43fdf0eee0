package core

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/dtcall/dtcall/wire"
)

// Session is one logged-in user: a command connection and, once registered,
// a media endpoint. A remote party (remote != nil) stands for a session of
// another node in a call with a session of this one: it has no command
// connection, its notices travel as Signals and its media endpoint sends
// frames to its node (see remote.go). Remote parties are not in
// Server.sessions.
type Session struct {
	id     wire.SessionID
	user   string
	cmd    *commandConn // nil for a remote party
	remote *remoteParty
	log    *slog.Logger
	front  int // index in fronts, for the per-front count

	// Guarded by Server.mu.
	call      *call
	media     *mediaEndpoint
	ended     bool
	drainCall bool        // in an answered call when the drain began; see settlingLocked
	settling  time.Time   // when the drain first let it settle; see settlingLocked
	lossTimer *time.Timer // pending media-loss check, see Config.MediaLossGrace

	// The media hot path reads these without the lock; they are written
	// under Server.mu. relayTo is the peer while a call is answered;
	// mediaNow mirrors media.
	relayTo  atomic.Pointer[Session]
	mediaNow atomic.Pointer[mediaEndpoint]
}

// call is one call between two sessions, ringing until answered.
type call struct {
	caller, callee *Session
	answered       bool

	// A call with a remote party (cross-node) has an id, the same on both
	// nodes, and is in Server.remoteCalls. pending: the caller's node has
	// sent the ring and waits for the callee's node to say whether it
	// rings (the caller hears nothing meanwhile); pendingTimer gives up.
	id           uint64
	pending      bool
	pendingTimer *time.Timer
	rerung       bool // the ring went to a second node (see HandleSignal)
}

// other returns the party of c that is not s.
func (c *call) other(s *Session) *Session {
	if c.caller == s {
		return c.callee
	}
	return c.caller
}

// send queues msg for s's command connection. s is a local session.
func (s *Session) send(msg []byte) { s.cmd.send(msg) }

// crowded reports whether s's reply queue is too full to take a notice
// that another session causes; see commandConn.crowded.
func (s *Session) crowded() bool { return s.cmd.crowded() }

// setInCall tells s's command writer whether s is in an answered call
// (for its probes); a remote party's node does that for it.
func (s *Session) setInCall(on bool) {
	if s.cmd != nil {
		s.cmd.setInCall(on)
	}
}

// startSessionLocked logs user in on c: a new session with a fresh id,
// replacing (and disconnecting) any session the user already had, and the
// login reply queued to c. The old session's connections are marked
// closed; their goroutines close them.
func (s *Server) startSessionLocked(c *commandConn, user string) *Session {
	sess := &Session{
		id:    s.newSessionIDLocked(),
		user:  user,
		cmd:   c,
		front: frontOf(c.conn),
	}
	sess.log = c.log.With("user", user, "sess", sess.id)
	if oldID, ok := s.cfg.Directory.Register(user, sess.id); ok {
		if old := s.sessions[oldID]; old != nil {
			s.logLocked(old.log, slog.LevelInfo, "logged in again elsewhere; closing the old connections", "tag", "login", "dir", "system")
			s.endSessionLocked(old)
			old.cmd.markClosed()
		}
	}
	s.sessions[sess.id] = sess
	s.metrics.sessions.Add(1)
	s.metrics.frontSessions[sess.front].Add(1)
	sess.send(wire.Reply(s.now(), wire.KindResp, wire.SubLogin, sess.id.String()))
	return sess
}

// endSessionLocked ends sess: its call (the other party is told), its media
// endpoint (marked closed), its directory entry. The command connection is
// left to its owner. Ending an ended session does nothing.
func (s *Server) endSessionLocked(sess *Session) {
	if sess.ended {
		return
	}
	sess.ended = true
	if sess.call != nil {
		s.leaveCallLocked(sess)
	}
	if sess.lossTimer != nil {
		sess.lossTimer.Stop()
	}
	if ep := sess.media; ep != nil {
		s.unbindMediaLocked(sess)
		s.closeMediaLocked(ep)
	}
	s.cfg.Directory.Unregister(sess.user, sess.id)
	delete(s.sessions, sess.id)
	s.metrics.sessions.Add(-1)
	s.metrics.frontSessions[sess.front].Add(-1)
}
