package transporttest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/dtcall/dtcall/transport"
)

// Handler is a transport.Handler that hands each channel a front accepts
// to the test waiting for it, instead of serving it: give it to the front
// under test, dial, then take the server side with Command or Media. Each
// Serve method blocks until the test is done with its channel (the end of
// the test that took it) or the front's context ends, then closes it.
type Handler struct {
	cmds  chan handed[transport.Conn]
	media chan handed[transport.MediaConn]
}

type handed[C transport.Conn] struct {
	c    C
	done chan struct{} // closed when the test is done with c
}

var _ transport.Handler = (*Handler)(nil)

// NewHandler returns a Handler with no channel waiting.
func NewHandler() *Handler {
	return &Handler{cmds: make(chan handed[transport.Conn]), media: make(chan handed[transport.MediaConn])}
}

func (h *Handler) ServeCommand(ctx context.Context, c transport.Conn) { hand(ctx, h.cmds, c) }

func (h *Handler) ServeMedia(ctx context.Context, c transport.MediaConn) { hand(ctx, h.media, c) }

func hand[C transport.Conn](ctx context.Context, ch chan handed[C], c C) {
	defer c.Close()
	hd := handed[C]{c: c, done: make(chan struct{})}
	select {
	case ch <- hd:
	case <-ctx.Done():
		return
	}
	select {
	case <-hd.done:
	case <-ctx.Done():
	}
}

// Command returns the command channel the front accepted from the peer at
// from, waiting for it a few seconds. Channels from other peers that come
// first are closed.
func (h *Handler) Command(t testing.TB, from netip.AddrPort) transport.Conn {
	t.Helper()
	return take(t, h.cmds, from)
}

// Media is Command for media channels.
func (h *Handler) Media(t testing.TB, from netip.AddrPort) transport.MediaConn {
	t.Helper()
	return take(t, h.media, from)
}

func take[C transport.Conn](t testing.TB, ch chan handed[C], from netip.AddrPort) C {
	t.Helper()
	timeout := time.After(10 * time.Second)
	var others []netip.AddrPort
	for {
		select {
		case hd := <-ch:
			if a := hd.c.RemoteAddr(); a != from {
				others = append(others, a)
				close(hd.done)
				continue
			}
			t.Cleanup(func() { close(hd.done) })
			return hd.c
		case <-timeout:
			t.Fatalf("the front handed over no channel from %v (others from %v)", from, others)
			var zero C
			return zero
		}
	}
}
