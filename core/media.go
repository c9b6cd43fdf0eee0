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

// mediaEndpoint is one registered media connection. Its read loop hands what
// it reads to the peer (see delivery.go); its write loop writes what was
// queued toward it.
type mediaEndpoint struct {
	srv      *Server
	sess     *Session
	conn     transport.MediaConn
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

	closeOnce sync.Once
	closed    chan struct{}
}

// ServeMedia serves one media connection: it waits for the registration,
// binds the connection to its session, then relays until the connection
// ends. A refused registration ends the connection with the reason (nothing
// would ever be relayed on it). ServeMedia closes c.
func (s *Server) ServeMedia(ctx context.Context, c transport.MediaConn) {
	if !s.track(c, nil) {
		c.Close()
		return
	}
	defer s.untrack(c)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	log := s.log.With("peer", c.RemoteAddr().Addr().String())
	ep, err := s.register(c, log)
	if err != nil {
		log.Info("media registration refused", "tag", "media", "dir", "inbound", "why", err)
		var r transport.Refusal
		if !errors.As(err, &r) {
			r = transport.RefuseTimeout // the read failed: nothing came in time
		}
		c.Refuse(r)
		c.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Go(ep.writeLoop)
	err = ep.readLoop()
	ep.close()
	wg.Wait()
	s.mediaEnded(ep, err)
}

// register reads the registration message (skipping keepalives) within
// LoginTimeout and binds c to its session. A refusal is returned as a
// transport.Refusal.
func (s *Server) register(c transport.MediaConn, log *slog.Logger) (*mediaEndpoint, error) {
	c.SetReadDeadline(time.Now().Add(s.cfg.LoginTimeout))
	var msg []byte
	for {
		var err error
		if msg, err = c.ReadMessage(); err != nil {
			return nil, fmt.Errorf("read registration: %w", err)
		}
		if !wire.IsKeepalive(msg) {
			break
		}
	}
	reg, err := wire.ParseRegistration(msg)
	switch {
	case err != nil:
		return nil, transport.RefuseMalformed
	case !s.fresh(reg.Time):
		return nil, transport.RefuseStale
	}
	ep := &mediaEndpoint{
		srv:      s,
		conn:     c,
		datagram: reg.Datagram,
		queue:    make(chan *chunk, s.cfg.MediaQueue),
		closed:   make(chan struct{}),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[reg.Session]
	switch {
	case sess == nil || sess.ended:
		return nil, transport.RefuseSession
	case sess.cmd.conn.Origin() != c.Origin():
		return nil, transport.RefuseOrigin
	case reg.Datagram && c.EnableDatagrams() != nil:
		return nil, transport.RefuseDatagrams
	}
	if tw, ok := c.(transport.TryWriter); ok && !reg.Datagram {
		ep.direct = tw
	}
	ep.sess = sess
	ep.log = sess.log.With("peer", c.RemoteAddr().Addr().String(), "datagram", reg.Datagram)
	s.bindMediaLocked(sess, ep)
	return ep, nil
}

// bindMediaLocked makes ep sess's media endpoint, closing the one it
// replaces. A call in progress carries on over the new endpoint.
func (s *Server) bindMediaLocked(sess *Session, ep *mediaEndpoint) {
	if old := sess.media; old != nil {
		old.close()
	}
	sess.media = ep
	sess.mediaNow.Store(ep)
	if sess.lossTimer != nil {
		sess.lossTimer.Stop()
		sess.lossTimer = nil
	}
	ep.log.Info("media registered", "tag", "media", "dir", "inbound")
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
	defer s.mu.Unlock()
	sess := ep.sess
	if sess.media != ep {
		return // replaced, or the session ended
	}
	s.unbindMediaLocked(sess)
	ep.log.Info("media connection closed", "tag", "media", "dir", "system", "reason", connEndReason(err))
	if sess.call == nil || sess.ended {
		return
	}
	c := sess.call
	sess.lossTimer = time.AfterFunc(s.cfg.MediaLossGrace, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if sess.call == c && sess.media == nil && !sess.ended {
			s.leaveCallLocked(sess)
		}
	})
}

// close closes the connection; both loops then end. Idempotent.
func (ep *mediaEndpoint) close() {
	ep.closeOnce.Do(func() {
		close(ep.closed)
		ep.conn.Close()
	})
}

// readLoop relays what the client sends to its call partner, or discards it
// while there is no answered call. The read deadline is pushed forward at
// most every IdleTimeout/4 so that a busy call does not reset a timer per
// frame. A KeptAlive channel has none: the registration's deadline is
// cleared and its transport notices a vanished peer.
func (ep *mediaEndpoint) readLoop() error {
	s := ep.srv
	_, keptAlive := ep.conn.(transport.KeptAlive)
	if keptAlive {
		ep.conn.SetReadDeadline(time.Time{})
	}
	var deadline time.Time
	for {
		if now := time.Now(); !keptAlive && deadline.Sub(now) < s.cfg.IdleTimeout*3/4 {
			deadline = now.Add(s.cfg.IdleTimeout)
			ep.conn.SetReadDeadline(deadline)
		}
		msg, err := ep.conn.ReadMedia()
		if err != nil {
			return err
		}
		s.metrics.mediaBytesIn.Add(int64(len(msg)))
		peer := ep.sess.relayTo.Load()
		if peer == nil || ep.sess.mediaNow.Load() != ep {
			continue // not in an answered call: discard
		}
		dst := peer.mediaNow.Load()
		if dst == nil {
			s.metrics.drop(DropPeerGone)
			continue
		}
		if !dst.writeDirect(msg) {
			dst.enqueue(newChunk(msg))
		}
	}
}
