package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/wire"
)

// This file registers media connections and binds them to their sessions;
// relay.go carries the frames.

// mediaEndpoint is one registered media connection. Its read loop hands what
// it reads to the peer; its write loop writes what was queued toward it
// (see relay.go).
type mediaEndpoint struct {
	srv      *Server
	sess     *Session
	conn     transport.MediaConn
	gate     *gate // conn's closed mark; only ServeMedia closes conn
	log      *slog.Logger
	datagram bool                // QUIC datagram mode: chunks are never merged
	queue    chan *chunk         // toward this client; drop-oldest when full
	direct   transport.TryWriter // conn, if it takes direct writes; else nil

	// unwritten counts chunks queued and not yet written or dropped,
	// including one the write loop holds outside the queue.
	unwritten atomic.Int64

	// wmu serializes writes to conn: the write loop's, and a peer's read
	// loop writing a frame directly. Only ever TryLocked by a read loop.
	wmu           sync.Mutex
	writeDeadline time.Time // guarded by wmu

	writeErr atomic.Pointer[error] // the failed write that closed ep, logged by ServeMedia

	// split is the node that holds the client's connection when it is not
	// this one (conn is then a peerMedia; see split.go), else "".
	split string

	// writer runs writeLoop while chunks are queued (it lingers a moment
	// after): an endpoint between calls has no writer goroutine.
	writer onDemand
}

// ServeMedia serves one media connection: it waits for the registration,
// binds the connection to its session, then relays until the connection
// ends. A refused registration ends the connection with the reason (nothing
// would ever be relayed on it). ServeMedia closes c, with no lock held:
// whoever else ends the connection only marks it closed.
func (s *Server) ServeMedia(ctx context.Context, c transport.MediaConn) {
	g := newGate(c)
	if !s.track(c, g, nil) {
		c.Close()
		return
	}
	defer s.untrack(c)
	// Under mu, like every mark before the endpoint is bound (see bind).
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		g.close()
		s.mu.Unlock()
	})
	defer stop()

	// This goroutine relays for the connection's whole life, so its frames
	// stay small: the registration runs apart, the end is a function.
	var ep *mediaEndpoint
	apart(func() { ep = s.admitMedia(c, g) })
	if ep != nil {
		ep.end(ep.readLoop())
	}
}

// admitMedia reads c's registration and binds c, or refuses and closes c
// and returns nil.
func (s *Server) admitMedia(c transport.MediaConn, g *gate) *mediaEndpoint {
	log := s.log.With("peer", c.RemoteAddr().Addr().String())
	ep, err := s.register(c, g, log)
	if err == nil {
		return ep
	}
	log.Info("media registration refused", "tag", "media", "dir", "inbound", "why", err)
	var r transport.Refusal
	if !errors.As(err, &r) {
		r = transport.RefuseTimeout // the read failed: nothing came in time
	}
	c.Refuse(r)
	c.Close()
	return nil
}

// end ends the endpoint after its read loop returned err.
func (ep *mediaEndpoint) end(err error) {
	ep.gate.close()
	if werr := ep.writeErr.Load(); werr != nil {
		ep.log.Info("media write failed; closed the receiver's media", "tag", "media", "dir", "error", "err", *werr)
	}
	ep.srv.mediaEnded(ep, err) // first: the call's grace starts at once, however long Close takes
	ep.conn.Close()            // also ends a write that ignores deadlines
	ep.stopWriter()
	ep.discardQueued()
}

// register reads c's registration and binds c to its session. A refusal
// is returned as a transport.Refusal.
func (s *Server) register(c transport.MediaConn, g *gate, log *slog.Logger) (*mediaEndpoint, error) {
	reg, err := s.readRegistration(c, g)
	if err != nil {
		return nil, err
	}
	ep, err := s.bind(c, g, reg, log)
	if errors.Is(err, errElsewhere) {
		return s.bindElsewhere(c, g, reg)
	}
	return ep, err
}

// errElsewhere says a registration names no session of this node, in a
// cluster: it may be another node's.
var errElsewhere = errors.New("session of no local user")

// readRegistration reads the registration message (skipping keepalives)
// within LoginTimeout and parses it.
func (s *Server) readRegistration(c transport.MediaConn, g *gate) (wire.Registration, error) {
	g.setReadDeadline(time.Now().Add(s.cfg.LoginTimeout))
	var msg []byte
	for {
		var err error
		if msg, err = c.ReadMessage(); err != nil {
			return wire.Registration{}, fmt.Errorf("read registration: %w", readError(g, err))
		}
		if !wire.IsKeepalive(msg) {
			break
		}
	}
	reg, err := wire.ParseRegistration(msg)
	switch {
	case err != nil:
		return reg, transport.RefuseMalformed
	case !s.fresh(reg.Time):
		return reg, transport.RefuseStale
	}
	return reg, nil
}

// bind makes c, registered by reg, the media endpoint of reg's session,
// switching it to datagram mode if reg asks. Until it is bound, c's gate
// is only closed under mu: closing sets a read deadline, which QUIC's
// media stream applies to the stream or to datagrams depending on a mode
// EnableDatagrams switches without a lock of its own, and a deadline set
// before the switch would be lost.
func (s *Server) bind(c transport.MediaConn, g *gate, reg wire.Registration, log *slog.Logger) (*mediaEndpoint, error) {
	s.mu.Lock()
	defer s.unlock()
	sess := s.sessions[reg.Session]
	switch {
	case g.closed():
		return nil, ErrClosed
	case sess == nil && s.cfg.Peers != nil:
		return nil, errElsewhere
	case sess == nil || sess.ended:
		return nil, transport.RefuseSession
	case sess.cmd.conn.Origin() != c.Origin():
		return nil, transport.RefuseOrigin
	case reg.Datagram && c.EnableDatagrams() != nil:
		return nil, transport.RefuseDatagrams
	}
	ep := &mediaEndpoint{
		srv:      s,
		sess:     sess,
		conn:     c,
		gate:     g,
		log:      sess.log.With("peer", c.RemoteAddr().Addr().String(), "datagram", reg.Datagram),
		datagram: reg.Datagram,
		queue:    make(chan *chunk, s.cfg.MediaQueue),
	}
	if tw, ok := c.(transport.TryWriter); ok {
		ep.direct = tw
	}
	s.bindMediaLocked(sess, ep)
	return ep, nil
}

// bindMediaLocked makes ep sess's media endpoint, marking the one it
// replaces closed. A call in progress carries on over the new endpoint.
func (s *Server) bindMediaLocked(sess *Session, ep *mediaEndpoint) {
	if old := sess.media; old != nil {
		s.closeMediaLocked(old)
	}
	sess.media = ep
	sess.mediaNow.Store(ep)
	if sess.lossTimer != nil {
		sess.lossTimer.Stop()
		sess.lossTimer = nil
	}
	s.logLocked(ep.log, slog.LevelInfo, "media registered", "tag", "media", "dir", "inbound")
}

func (s *Server) unbindMediaLocked(sess *Session) {
	sess.media = nil
	sess.mediaNow.Store(nil)
}

// mediaEnded runs when ep's connection is gone. If ep was still its
// session's media and the session is in a call, the call ends after
// MediaLossGrace unless the call ended or new media registered meanwhile.
func (s *Server) mediaEnded(ep *mediaEndpoint, err error) {
	s.mu.Lock()
	defer s.unlock()
	if ep.sess.remote != nil {
		s.shadowEndedLocked(ep.sess, ep)
		return
	}
	s.mediaEndedLocked(ep, err)
}

// mediaEndedLocked is mediaEnded with Server.mu held.
func (s *Server) mediaEndedLocked(ep *mediaEndpoint, err error) {
	sess := ep.sess
	if sess.media != ep {
		return // replaced, or the session ended
	}
	s.unbindMediaLocked(sess)
	s.logLocked(ep.log, slog.LevelInfo, "media connection closed", "tag", "media", "dir", "system", "reason", connEndReason(err))
	if sess.call == nil || sess.ended {
		return
	}
	c := sess.call
	sess.lossTimer = time.AfterFunc(s.cfg.MediaLossGrace, func() {
		s.mu.Lock()
		defer s.unlock()
		if sess.call == c && sess.media == nil && !sess.ended {
			s.leaveCallLocked(sess)
		}
	})
}
