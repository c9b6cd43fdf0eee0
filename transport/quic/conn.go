package quic

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/transport"
)

// client is one QUIC connection: its command stream, its media streams and
// the datagrams that arrive for its datagram-mode media stream.
type client struct {
	srv *Server
	qc  *quicgo.Conn
	st  *connState     // from connContext
	wg  sync.WaitGroup // the connection's goroutines; serveConn waits
	// dgramMedia is the media stream in datagram mode, if any: datagrams
	// that arrive go to it.
	dgramMedia atomic.Pointer[mediaStream]
}

// serveConn serves one QUIC connection until it ends: the first stream the
// client opens is the command stream; every later one is a media stream
// candidate, refused at once (RefuseSession) before the connection's login.
// The connection closes when the command stream's session ends.
func (s *Server) serveConn(qc *quicgo.Conn) {
	s.handshakeDone(qc)
	c := &client{srv: s, qc: qc, st: stateOf(qc)}
	if c.st == nil { // not from our listener's connContext
		c.st = &connState{}
	}
	// Until the command stream's session runs (it ends with the server and
	// then closes qc), the server's close must close qc itself.
	stop := context.AfterFunc(s.ctx, func() { qc.CloseWithError(codeShuttingDown, "server shutting down") })
	actx, cancel := context.WithTimeout(qc.Context(), s.handshake)
	st, err := qc.AcceptStream(actx)
	cancel()
	stop()
	if err != nil {
		s.log.Info("no command stream", "peer", remoteAddr(qc).Addr().String(), "tag", "quic", "dir", "error", "err", err)
		qc.CloseWithError(codeNoCommand, "no command stream")
		return
	}
	wg := &c.wg
	wg.Go(func() { c.serveCommand(st) })
	wg.Go(c.receiveDatagrams)
	for {
		st, err := qc.AcceptStream(qc.Context())
		if err != nil {
			break // the connection is gone
		}
		if !c.st.loggedIn.Load() {
			// No session can be registered from here yet (the core would
			// say the same, after a goroutine and a buffer for this stream).
			refuse(st, transport.RefuseSession)
			continue
		}
		wg.Go(func() { c.serveMedia(st) })
	}
	if !s.isClosed() {
		s.closeConn(qc, false)
	}
	wg.Wait()
}

// serveCommand serves the command stream until its session ends. Like
// serveMedia it is a function of its own, with a small frame: its
// goroutine waits in the stream's reads for the connection's whole life.
func (c *client) serveCommand(st *quicgo.Stream) {
	s := c.srv
	s.handler.ServeCommand(s.ctx, newCommandStream(c, st))
	// The session is over: the client left, or logged in elsewhere (the
	// command stream's Close has closed or is closing it).
	if !s.isClosed() {
		s.closeConn(c.qc, false)
	}
}

// serveMedia serves a media stream until it ends.
func (c *client) serveMedia(st *quicgo.Stream) {
	c.srv.handler.ServeMedia(c.srv.ctx, newMediaStream(c, st))
}

// closeConn closes a client's connection: code 0, or "server shutting
// down" (0x202) once the listeners are closed for a drain. With linger,
// the close waits up to closeLinger (or until the client closes), so that
// the client reads the last notices (call|drop) before the close code: a
// quic-go reader gets the close error before data it had not read yet.
func (s *Server) closeConn(qc *quicgo.Conn, linger bool) error {
	if !s.isClosed() {
		return qc.CloseWithError(codeClosed, "")
	}
	if !linger {
		return qc.CloseWithError(codeShuttingDown, "server shutting down")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.lingering[qc]; ok {
		return nil
	}
	s.lingering[qc] = time.AfterFunc(closeLinger, func() {
		qc.CloseWithError(codeShuttingDown, "server shutting down")
	})
	s.lingerUntil = time.Now().Add(closeLinger)
	return nil
}

// closeLinger is how long a draining server keeps a closed client's
// connection open for its last notices to be read.
const closeLinger = time.Second

// receiveDatagrams hands each datagram to the datagram-mode media stream;
// without one, datagrams are discarded (as legacy media outside a
// registration is).
func (c *client) receiveDatagrams() {
	for {
		p, err := c.qc.ReceiveDatagram(c.qc.Context())
		if err != nil {
			return
		}
		if m := c.dgramMedia.Load(); m != nil {
			m.deliver(p)
		}
	}
}

// remoteAddr is the client's current address (it changes when the client
// migrates).
func remoteAddr(qc *quicgo.Conn) netip.AddrPort {
	if ua, ok := qc.RemoteAddr().(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
