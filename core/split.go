package core

import (
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/wire"
)

// This file binds a legacy media connection that reached another node
// than its session's command connection (a balancer without affinity).
// The node that holds the connection (the media node) asks the session's
// node (the home) to bind it; the home checks the same-IP rule and gives
// the session a media endpoint that writes to the media node, which
// writes to the connection; what the client sends, the media node sends
// home, where it is relayed as if read there. Both legs go through the
// usual drop-oldest queues.
//
// On the media node the connection belongs to a shadow: a stand-in for
// the home session whose relay partner is the home itself.

// splitBindWait bounds how long a media node waits for the home's answer.
const splitBindWait = 3 * time.Second

// pendingBind is a media node's request waiting for its home's answer.
type pendingBind struct {
	home   string
	answer chan Signal // SigMediaBound, or closed when the home was lost
	done   bool        // answered or closed; guarded by Server.mu
}

// settleLocked hands the home's answer to the waiting registration, or
// with no answer (lost home) just wakes it.
func (p *pendingBind) settleLocked(ans *Signal) {
	if p.done {
		return
	}
	p.done = true
	if ans != nil {
		p.answer <- *ans
	}
	close(p.answer)
}

// bindElsewhere binds c, registered by reg but for no session of this
// node, to its session on another node, if the directory knows one. It
// returns the endpoint, or the refusal.
func (s *Server) bindElsewhere(c transport.MediaConn, g *gate, reg wire.Registration) (*mediaEndpoint, error) {
	loc, _ := s.cfg.Directory.(SessionLocator)
	ip, isIP := c.Origin().(netip.Addr)
	if s.cfg.Peers == nil || loc == nil || !isIP || reg.Datagram {
		return nil, transport.RefuseSession
	}
	home, ok := loc.LocateSession(reg.Session)
	if !ok || !s.isRemote(Location{Node: home}) {
		return nil, transport.RefuseSession
	}
	p := &pendingBind{home: home, answer: make(chan Signal, 1)}
	s.mu.Lock()
	if s.closing || s.binds[reg.Session] != nil || s.shadows[reg.Session] != nil {
		s.unlock()
		return nil, transport.RefuseSession
	}
	s.binds[reg.Session] = p
	s.signalLocked(home, Signal{Kind: SigMediaBind, To: reg.Session, Notice: ip.String()})
	s.unlock()

	t := time.NewTimer(splitBindWait)
	defer t.Stop()
	var ans Signal
	var answered bool
	select {
	case ans, answered = <-p.answer:
	case <-t.C:
	case <-g.done:
	}
	s.mu.Lock()
	defer s.unlock()
	delete(s.binds, reg.Session)
	switch {
	case g.closed():
		if answered && ans.Notice == "" {
			s.signalLocked(home, Signal{Kind: SigMediaGone, To: reg.Session})
		}
		return nil, ErrClosed
	case !answered:
		return nil, transport.RefuseTimeout
	case ans.Notice != "":
		n, _ := strconv.ParseUint(ans.Notice, 10, 64)
		return nil, transport.Refusal(n)
	}
	shadow := s.newRemoteParty(home, reg.Session, ans.FromUser)
	homeSide := s.newRemoteParty(home, reg.Session, ans.FromUser)
	// One piece per message: the home relays each as if read there.
	homeSide.media = s.newPeerEndpoint(homeSide, &peerMedia{peers: s.cfg.Peers, node: home, to: reg.Session, from: true}, true)
	homeSide.mediaNow.Store(homeSide.media)
	shadow.relayTo.Store(homeSide)
	ep := &mediaEndpoint{
		srv:   s,
		sess:  shadow,
		conn:  c,
		gate:  g,
		log:   shadow.log.With("peer", c.RemoteAddr().Addr().String()),
		queue: make(chan *chunk, s.cfg.MediaQueue),
	}
	if tw, ok := c.(transport.TryWriter); ok {
		ep.direct = tw
	}
	shadow.media = ep
	shadow.mediaNow.Store(ep)
	s.shadows[reg.Session] = shadow
	s.remoteIn.Store(reg.Session, shadow)
	s.logLocked(ep.log, slog.LevelInfo, "media registered for a session of another node", "tag", "media", "dir", "inbound", "node", home)
	return ep, nil
}

// newPeerEndpoint is a media endpoint of sess that writes to conn, a
// peerMedia; its write loop runs while chunks are queued, and what is
// queued when its gate closes is gone.
func (s *Server) newPeerEndpoint(sess *Session, conn *peerMedia, datagram bool) *mediaEndpoint {
	g := newGate(conn)
	conn.gate = g
	ep := &mediaEndpoint{
		srv:      s,
		sess:     sess,
		conn:     conn,
		gate:     g,
		log:      sess.log,
		datagram: datagram,
		queue:    make(chan *chunk, s.cfg.MediaQueue),
		split:    conn.node,
	}
	if tp, ok := s.cfg.Peers.(TryPeers); ok && !conn.from {
		conn.try = tp
		ep.direct = conn
	}
	return ep
}

// shadowEnded runs on the media node when a split connection ends: the
// home hears of it (its call's grace starts) and the way home closes.
func (s *Server) shadowEndedLocked(shadow *Session, ep *mediaEndpoint) {
	if s.shadows[shadow.id] != shadow {
		return
	}
	delete(s.shadows, shadow.id)
	s.remoteIn.CompareAndDelete(shadow.id, shadow)
	if home := shadow.relayTo.Load(); home != nil {
		home.media.gate.close()
	}
	if !shadow.ended { // else the home asked for the close, or is lost
		s.signalLocked(shadow.remote.node, Signal{Kind: SigMediaGone, To: shadow.id})
	}
	shadow.ended = true
	s.logLocked(ep.log, slog.LevelInfo, "media connection closed", "tag", "media", "dir", "system")
}

// mediaBindLocked is a media node's request to bind a connection to local
// session sig.To; the home answers SigMediaBound.
func (s *Server) mediaBindLocked(from string, sig Signal) {
	answer := Signal{Kind: SigMediaBound, To: sig.To}
	sess := s.sessions[sig.To]
	ip, err := netip.ParseAddr(sig.Notice)
	switch {
	case s.closing || sess == nil || sess.ended:
		answer.Notice = strconv.FormatUint(uint64(transport.RefuseSession), 10)
	case err != nil || sess.cmd.conn.Origin() != any(ip):
		answer.Notice = strconv.FormatUint(uint64(transport.RefuseOrigin), 10)
	}
	if answer.Notice != "" {
		s.signalLocked(from, answer)
		return
	}
	answer.FromUser = sess.user
	s.signalLocked(from, answer)
	ep := s.newPeerEndpoint(sess, &peerMedia{peers: s.cfg.Peers, node: from, to: sess.id}, false)
	ep.log = sess.log.With("node", from)
	s.bindMediaLocked(sess, ep)
	s.splitIn.Store(sess.id, sess)
}

// mediaGoneLocked applies SigMediaGone from node from.
func (s *Server) mediaGoneLocked(from string, sig Signal) {
	if sess := s.sessions[sig.To]; sess != nil {
		// The home: the connection on the media node closed.
		if ep := sess.media; ep != nil && ep.split == from {
			ep.gate.close()
			s.splitIn.CompareAndDelete(sess.id, sess)
			s.mediaEndedLocked(ep, nil)
		}
		return
	}
	if shadow := s.shadows[sig.To]; shadow != nil && shadow.remote.node == from {
		// The media node: the home wants the connection closed.
		shadow.ended = true
		shadow.media.gate.close()
	}
}

// closeMediaLocked marks ep closed; a split endpoint's media node is told
// to close the connection.
func (s *Server) closeMediaLocked(ep *mediaEndpoint) {
	ep.gate.close()
	if ep.split != "" && ep.sess.remote == nil {
		s.splitIn.CompareAndDelete(ep.sess.id, ep.sess)
		s.signalLocked(ep.split, Signal{Kind: SigMediaGone, To: ep.sess.id})
	}
}

// RelayMedia relays a frame that the client of local session from sent
// through a media connection on another node, as readLoop relays one read
// here. It takes no lock.
func (s *Server) RelayMedia(from wire.SessionID, frame []byte) {
	v, ok := s.splitIn.Load(from)
	if !ok {
		return
	}
	sess := v.(*Session)
	if ep := sess.mediaNow.Load(); ep == nil || ep.split == "" {
		return
	}
	s.metrics.mediaBytesIn.Add(int64(len(frame)))
	s.relayFrom(sess, frame)
}

// nodeLostSplitsLocked closes the split media that depended on node.
func (s *Server) nodeLostSplitsLocked(node string) {
	for _, shadow := range s.shadows {
		if shadow.remote.node == node {
			shadow.ended = true
			shadow.media.gate.close()
		}
	}
	for _, p := range s.binds {
		if p.home == node {
			p.settleLocked(nil)
		}
	}
	for _, sess := range s.sessions {
		if ep := sess.media; ep != nil && ep.split == node {
			ep.gate.close()
			s.splitIn.CompareAndDelete(sess.id, sess)
			s.mediaEndedLocked(ep, nil)
		}
	}
}
