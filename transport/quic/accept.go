package quic

import (
	"context"
	"crypto/tls"
	"time"
)

// quic-go queues the connections whose handshake has completed for
// Listener.Accept in a channel of 32 (protocol.MaxAcceptQueueSize, not
// configurable), and refuses one more with CONNECTION_REFUSED at once,
// after the client's own handshake is complete: the client learns it from
// its first command. In a storm of handshakes on a saturated machine the
// accept loop, however little it does, is not scheduled for tens of
// milliseconds, and the queue overflows (BENCHMARKS.md, "Reconnect
// storms"). So the front keeps that queue from filling: a connection takes
// one of acceptSlots tokens as its handshake completes, and gives it back
// when the accept loop takes it, or when it closes. A handshake that finds
// no token waits, holding only its own connection's goroutine: the server
// sheds load by slowing the last step of handshakes instead of refusing
// them.
const (
	// acceptSlots is below quic-go's 32: a connection that closes while
	// queued gives its token back before quic-go drops it from the queue.
	acceptSlots = 24
	// slotWait bounds the wait for a token. After it the handshake
	// completes anyway, and quic-go may refuse it (CONNECTION_REFUSED,
	// which package client's Login reports and dtload counts).
	slotWait = 5 * time.Second
)

// configForClient is the TLS configuration of one connection: the
// server's, with a WrapSession that waits for an accept slot (awaitSlot).
// crypto/tls calls WrapSession as it issues the session ticket, which
// quic-go asks for on the connection's goroutine right as the server's
// handshake completes, before it queues the connection for Accept; so
// only a client that finished its handshake can hold a slot, and one that
// stalls its handshake (never sending Finished) holds none. Session
// tickets are encrypted as crypto/tls would (EncryptTicket).
func (s *Server) configForClient(chi *tls.ClientHelloInfo) (*tls.Config, error) {
	// chi.Context() ends with the handshake; st.ctx with the connection.
	st, _ := chi.Context().Value(connStateKey{}).(*connState)
	if st == nil {
		return nil, nil
	}
	c := s.tls.Clone()
	c.GetConfigForClient = nil
	c.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		s.awaitSlot(st.ctx, st)
		return c.EncryptTicket(cs, ss)
	}
	return c, nil
}

// awaitSlot takes an accept slot for st's connection, waiting up to
// slotWait, until ctx (the connection's) ends or the server closes. It
// blocks the connection's own goroutine in quic-go, nothing else.
func (s *Server) awaitSlot(ctx context.Context, st *connState) {
	select {
	case s.slots <- struct{}{}:
	default:
		t := time.NewTimer(slotWait)
		defer t.Stop()
		select {
		case s.slots <- struct{}{}:
		case <-t.C:
			s.slotTimeouts.Add(1)
			return
		case <-ctx.Done():
			return
		case <-s.ctx.Done():
			return
		}
	}
	st.slot.Store(true)
	if ctx.Err() != nil { // closed meanwhile: its AfterFunc may have run already
		s.releaseSlot(st)
	}
}

// releaseSlot gives back st's accept slot, if it holds one. Safe to call
// more than once and from any goroutine.
func (s *Server) releaseSlot(st *connState) {
	if st != nil && st.slot.CompareAndSwap(true, false) {
		<-s.slots
	}
}
