package core

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/wire"
)

// This file is the node's half of calls across nodes (see cluster.go and
// docs/CLUSTER.md). Each node runs the call state machine for its own
// party; the other party is a remote party whose notices are Signals.
// Who decides what: the callee's node whether the callee rings (it knows
// the callee's state), each node the commands of its own party; every
// transition is told to the other node in order, and a node applies a
// notice only to the call it names, so a notice for a call that already
// ended on this side is ignored.

// remoteParty is what a node knows of a session on another node.
type remoteParty struct {
	node string
}

// remoteRingWait bounds how long a caller waits for the callee's node to
// answer a ring; then the callee is not available.
const remoteRingWait = 3 * time.Second

// outSignal is a signal decided under mu, sent by unlock.
type outSignal struct {
	node string
	sig  Signal
}

// isRemote reports whether loc is on another node.
func (s *Server) isRemote(loc Location) bool {
	return s.cfg.Peers != nil && loc.Node != "" && loc.Node != s.cfg.Peers.Node()
}

// resolveWait bounds how long a call waits for the cluster's directory to
// look up a callee it does not know yet (Resolver).
const resolveWait = 250 * time.Millisecond

// resolveCallee asks a clustered directory that does not know user
// online to look at its source, before a call to user is placed: user may
// have logged in on another node a moment ago. Only for existing users;
// no lock is held.
func (s *Server) resolveCallee(ctx context.Context, user string) {
	r, ok := s.cfg.Directory.(Resolver)
	if !ok || s.cfg.Peers == nil {
		return
	}
	if _, online := s.cfg.Directory.Lookup(user); online || !s.accounts.Exists(user) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, resolveWait)
	defer cancel()
	r.Resolve(ctx, user)
}

// signalLocked queues sig for node; unlock sends it, in order.
func (s *Server) signalLocked(node string, sig Signal) {
	s.outbox = append(s.outbox, outSignal{node, sig})
}

// newRemoteParty is the stand-in for session id of user on node.
func (s *Server) newRemoteParty(node string, id wire.SessionID, user string) *Session {
	return &Session{
		id:     id,
		user:   user,
		remote: &remoteParty{node: node},
		log:    s.log.With("user", user, "sess", id, "node", node),
		front:  -1,
	}
}

// newCallID draws a call id from crypto/rand (never 0).
func newCallID() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// ringRemoteLocked asks the callee's node to ring callee for caller. The
// caller is ringing (busy for others) from now on, and hears
// ring|available, busy or notavailable when the callee's node answers.
func (s *Server) ringRemoteLocked(caller *Session, callee string, loc Location) {
	c := &call{
		id:      newCallID(),
		caller:  caller,
		callee:  s.newRemoteParty(loc.Node, loc.Session, callee),
		pending: true,
	}
	caller.call, c.callee.call = c, c
	s.remoteCalls[c.id] = c
	c.pendingTimer = time.AfterFunc(remoteRingWait, func() {
		s.mu.Lock()
		defer s.unlock()
		if c.pending && caller.call == c {
			s.ringAnsweredLocked(c, wire.SubNotAvailable)
			// The callee's node may ring after all: tell it the call is over.
			s.tellLocked(c, c.callee, wire.KindCall, wire.SubEnd, caller.user)
		}
	})
	s.signalLocked(loc.Node, Signal{
		Kind: SigRing, Call: c.id,
		From: caller.id, FromUser: caller.user, ToUser: callee,
	})
}

// ringAnsweredLocked settles the pending ring of c (this node has the
// caller) with the callee's node's answer.
func (s *Server) ringAnsweredLocked(c *call, result string) {
	c.pending = false
	c.pendingTimer.Stop()
	switch result {
	case wire.SubAvailable:
		c.caller.send(wire.Reply(s.now(), wire.KindRing, wire.SubAvailable, c.callee.user))
		s.logLocked(c.caller.log, slog.LevelInfo, "ringing", "tag", "call", "dir", "inbound", "callee", c.callee.user, "node", c.callee.remote.node)
		return
	case wire.SubBusy:
		s.metrics.call(CallBusy)
	default:
		result = wire.SubNotAvailable
		s.metrics.call(CallNotAvailable)
	}
	s.clearCallLocked(c)
	c.caller.send(wire.Reply(s.now(), wire.KindRing, result, c.callee.user))
}

// relayRemoteLocked gives the remote party of answered call c a media
// endpoint that sends to its node, through the drop-oldest queue and write
// loop of any endpoint: a slow node never slows the sender.
func (s *Server) relayRemoteLocked(c *call) {
	local, remote := c.caller, c.callee
	if local.remote != nil {
		local, remote = remote, local
	}
	// One frame per message (datagram): the receiver may be in datagram mode.
	ep := s.newPeerEndpoint(remote, &peerMedia{peers: s.cfg.Peers, node: remote.remote.node, to: remote.id}, true)
	remote.media = ep
	remote.mediaNow.Store(ep)
	s.remoteIn.Store(local.id, local)
	s.metrics.remoteCalls.Add(1)
}

// forgetRemoteLocked drops what this node kept for cross-node call c once
// it is over on this side.
func (s *Server) forgetRemoteLocked(c *call) {
	delete(s.remoteCalls, c.id)
	if c.pendingTimer != nil {
		c.pendingTimer.Stop()
	}
	for _, p := range []*Session{c.caller, c.callee} {
		if p.remote != nil {
			if ep := p.media; ep != nil {
				p.media = nil
				p.mediaNow.Store(nil)
				ep.gate.close()
				s.metrics.remoteCalls.Add(-1)
			}
		} else {
			s.remoteIn.CompareAndDelete(p.id, p)
		}
	}
}

// HandleSignal applies a signal from node from to this node's half of a
// call. The cluster calls it from one goroutine per sending node, in the
// order the signals were sent.
func (s *Server) HandleSignal(from string, sig Signal) {
	s.mu.Lock()
	defer s.unlock()
	s.metrics.signals.Add(1)
	switch sig.Kind {
	case SigRing:
		s.ringedLocked(from, sig)
	case SigRingResult:
		c := s.remoteCalls[sig.Call]
		if c == nil || !c.pending || c.caller.id != sig.To || c.callee.remote.node != from {
			return
		}
		if sig.Notice == wire.SubNotAvailable && !c.rerung {
			// The callee may have logged in on another node since this
			// node looked: ask there, once.
			if loc, ok := s.cfg.Directory.Lookup(c.callee.user); ok && s.isRemote(loc) && loc.Node != from {
				c.rerung = true
				c.callee.remote.node, c.callee.id = loc.Node, loc.Session
				s.signalLocked(loc.Node, Signal{Kind: SigRing, Call: c.id, From: c.caller.id, FromUser: c.caller.user, ToUser: c.callee.user})
				return
			}
		}
		c.callee.id = sig.From
		s.ringAnsweredLocked(c, sig.Notice)
	case SigNotice:
		if c := s.remoteCalls[sig.Call]; c != nil {
			s.noticedLocked(c, sig)
		}
	case SigMediaBind:
		s.mediaBindLocked(from, sig)
	case SigMediaBound:
		if p := s.binds[sig.To]; p != nil && p.home == from {
			p.settleLocked(&sig)
		}
	case SigMediaGone:
		s.mediaGoneLocked(from, sig)
	}
}

// ringedLocked is a ring from a caller on node from: like placeCallLocked
// from the callee's side.
func (s *Server) ringedLocked(from string, sig Signal) {
	result := wire.SubAvailable
	loc, online := s.cfg.Directory.Lookup(sig.ToUser)
	callee := s.sessions[loc.Session]
	switch {
	case s.closing || !online || s.isRemote(loc) || callee == nil || callee.media == nil:
		result = wire.SubNotAvailable
	case callee.call != nil || s.remoteCalls[sig.Call] != nil:
		result = wire.SubBusy
	case callee.crowded():
		s.metrics.crowded.Add(1)
		result = wire.SubBusy
	}
	answer := Signal{Kind: SigRingResult, Call: sig.Call, To: sig.From, ToUser: sig.FromUser, Notice: result}
	if callee != nil {
		answer.From, answer.FromUser = callee.id, callee.user
	}
	s.signalLocked(from, answer)
	if result != wire.SubAvailable {
		return
	}
	c := &call{id: sig.Call, caller: s.newRemoteParty(from, sig.From, sig.FromUser), callee: callee}
	c.caller.call, callee.call = c, c
	s.remoteCalls[c.id] = c
	callee.send(wire.Reply(s.now(), wire.KindRing, wire.SubIncoming, sig.FromUser))
	s.logLocked(callee.log, slog.LevelInfo, "ringing", "tag", "call", "dir", "inbound", "caller", sig.FromUser, "node", from)
}

// noticedLocked applies what the remote party of c did (sig.Notice) and
// tells the local party, as the state machine does for a local call.
func (s *Server) noticedLocked(c *call, sig Signal) {
	local, remote := c.caller, c.callee
	if local.remote != nil {
		local, remote = remote, local
	}
	if local.id != sig.To {
		return
	}
	now := s.now()
	switch sig.Notice {
	case wire.KindCall + "|" + wire.SubStart:
		if c.answered || c.pending || c.caller != local {
			return
		}
		c.answered = true
		s.calls++
		s.metrics.activeCalls.Add(1)
		s.metrics.callsStarted.Add(1)
		s.relayLocked(c)
		local.send(wire.Reply(now, wire.KindCall, wire.SubStart, remote.user))
		s.logLocked(local.log, slog.LevelInfo, "call started", "tag", "call", "dir", "inbound", "callee", remote.user, "node", remote.remote.node)
	case wire.KindCall + "|" + wire.SubReject, wire.KindRing + "|" + wire.SubTimeout:
		if c.answered {
			return
		}
		s.clearCallLocked(c)
		kind, sub, _ := cutNotice(sig.Notice)
		local.send(wire.Reply(now, kind, sub, remote.user))
	case wire.KindCall + "|" + wire.SubEnd:
		s.clearCallLocked(c)
		if c.answered {
			s.metrics.ended(EndHangup)
		}
		local.send(wire.Reply(now, wire.KindCall, wire.SubEnd, remote.user))
		s.logLocked(local.log, slog.LevelInfo, "call ended", "tag", "call", "dir", "system", "peer_user", remote.user)
	case wire.KindCall + "|" + wire.SubDrop:
		s.clearCallLocked(c)
		if c.answered {
			s.metrics.ended(EndDrop)
			local.send(wire.Reply(now, wire.KindCall, wire.SubDrop, local.id.String()))
		} else {
			local.send(wire.Reply(now, wire.KindCall, wire.SubEnd, remote.user))
		}
		s.logLocked(local.log, slog.LevelInfo, "call partner left", "tag", "call", "dir", "system", "peer_user", remote.user, "answered", c.answered)
	}
}

// cutNotice splits "kind|sub".
func cutNotice(n string) (kind, sub string, ok bool) {
	for i := range len(n) {
		if n[i] == '|' {
			return n[:i], n[i+1:], true
		}
	}
	return n, "", false
}

// DeliverMedia hands a frame that a remote party sent to the client of
// session to, through its media endpoint as the relay does. It takes no
// lock: the cluster calls it for every frame.
func (s *Server) DeliverMedia(to wire.SessionID, frame []byte) {
	v, ok := s.remoteIn.Load(to)
	if !ok {
		return // the call is over on this side
	}
	s.metrics.mediaBytesIn.Add(int64(len(frame)))
	s.deliver(v.(*Session), frame)
}

// Superseded ends local session id because its user logged in on another
// node, as a second login on this node would.
func (s *Server) Superseded(id wire.SessionID) {
	s.mu.Lock()
	defer s.unlock()
	sess := s.sessions[id]
	if sess == nil {
		return
	}
	s.logLocked(sess.log, slog.LevelInfo, "logged in again elsewhere; closing the old connections", "tag", "login", "dir", "system")
	s.endSessionLocked(sess)
	sess.cmd.markClosed()
}

// NodeLost ends every call with a party on node (it died, or cannot be
// reached): the local party is told as if the other had left.
func (s *Server) NodeLost(node string) {
	s.mu.Lock()
	defer s.unlock()
	var gone []*call
	for _, c := range s.remoteCalls {
		if p := remotePartyOf(c); p != nil && p.remote.node == node {
			gone = append(gone, c)
		}
	}
	for _, c := range gone {
		p := remotePartyOf(c)
		if c.pending {
			s.ringAnsweredLocked(c, wire.SubNotAvailable)
			continue
		}
		s.leaveCallLocked(p)
	}
	s.nodeLostSplitsLocked(node)
	if len(gone) > 0 {
		s.logLocked(s.log, slog.LevelWarn, "lost a node: ended its calls", "tag", "cluster", "dir", "system", "node", node, "calls", len(gone))
	}
}

// remotePartyOf returns c's remote party, nil if it has none.
func remotePartyOf(c *call) *Session {
	switch {
	case c.caller.remote != nil:
		return c.caller
	case c.callee.remote != nil:
		return c.callee
	}
	return nil
}

// peerMedia is the media channel of a remote party: what is written to it
// goes to the party's node. Only its write side is used (the remote
// party's frames arrive through DeliverMedia); deadlines do not apply,
// Peers.Media never waits long.
type peerMedia struct {
	peers Peers
	node  string
	to    wire.SessionID
	from  bool // frames from the client of session to, for its node (MediaFrom)
	gate  *gate
	try   TryPeers // peers, if it takes direct sends (TryWriteMedia)
}

// TryWriteMedia sends p from the sender's goroutine if the cluster can
// send it without waiting (transport.TryWriter).
func (m *peerMedia) TryWriteMedia(p []byte) (transport.TryResult, error) {
	if m.gate.closed() {
		return transport.NotTaken, errPeerMediaClosed
	}
	if sent, err := m.try.TryMedia(m.node, m.to, p); sent || err != nil {
		return transport.Written, err
	}
	return transport.NotTaken, nil
}

var errPeerMediaClosed = errors.New("remote party's media closed")

func (m *peerMedia) WriteMedia(p []byte) error {
	if m.gate.closed() {
		return errPeerMediaClosed
	}
	if m.from {
		return m.peers.MediaFrom(m.node, m.to, p)
	}
	return m.peers.Media(m.node, m.to, p)
}
func (m *peerMedia) ReadMedia() ([]byte, error)       { <-m.gate.done; return nil, errPeerMediaClosed }
func (m *peerMedia) ReadMessage() ([]byte, error)     { return m.ReadMedia() }
func (m *peerMedia) WriteMessage(p []byte) error      { return m.WriteMedia(p) }
func (m *peerMedia) SetReadDeadline(time.Time) error  { return nil }
func (m *peerMedia) SetWriteDeadline(time.Time) error { return nil }
func (m *peerMedia) RemoteAddr() netip.AddrPort       { return netip.AddrPort{} }
func (m *peerMedia) Origin() any                      { return m }
func (m *peerMedia) Close() error                     { return nil }
func (m *peerMedia) EnableDatagrams() error           { return nil }
func (m *peerMedia) Refuse(transport.Refusal)         {}

var _ transport.MediaConn = (*peerMedia)(nil)
