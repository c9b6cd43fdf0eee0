package core

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Nothing blocks under Server.mu: a log sink that stops, or a connection
// whose Close stops, holds up the goroutine that writes to it or closes it
// and no other client.

// blockingHandler is a slog.Handler whose Handle blocks, while armed, on
// the records match selects, until release is closed (at most 30 s, so a
// broken test still ends).
type blockingHandler struct {
	attrs []slog.Attr
	st    *blockState
}

type blockState struct {
	armed   atomic.Bool
	match   func(attrs []slog.Attr) bool
	release chan struct{}
	blocked atomic.Int64 // Handle calls blocked now
}

func (h *blockingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *blockingHandler) Handle(_ context.Context, r slog.Record) error {
	if !h.st.armed.Load() {
		return nil
	}
	attrs := slices.Clone(h.attrs)
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	if !h.st.match(attrs) {
		return nil
	}
	h.st.blocked.Add(1)
	defer h.st.blocked.Add(-1)
	select {
	case <-h.st.release:
	case <-time.After(30 * time.Second):
	}
	return nil
}

func (h *blockingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &blockingHandler{attrs: append(slices.Clone(h.attrs), as...), st: h.st}
}

func (h *blockingHandler) WithGroup(string) slog.Handler { return h }

// hasAttr matches records that carry key=value.
func hasAttr(key, value string) func([]slog.Attr) bool {
	return func(attrs []slog.Attr) bool {
		return slices.ContainsFunc(attrs, func(a slog.Attr) bool { return a.Key == key && a.Value.String() == value })
	}
}

func TestBlockedLogSinkDoesNotStallOthers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		match func([]slog.Attr) bool
	}{
		{"one session's lines", hasAttr("user", "alice")},
		{"every line", func([]slog.Attr) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &blockState{match: tc.match, release: make(chan struct{})}
			h := newHarnessLog(t, Config{}, testAccounts, slog.New(&blockingHandler{st: st}))
			t.Cleanup(func() { close(st.release) }) // before the harness shuts down
			a, b := h.login("alice"), h.login("bob")
			c, d := h.login("carol"), h.login("dave")
			st.armed.Store(true)

			// Alice's call is logged ("ringing", with her user): the sink
			// blocks her goroutine, after her command has run.
			a.say("call", "bob")
			a.expect("ring|available|bob")
			b.expect("ring|incoming|alice")
			waitFor(t, func() bool { return st.blocked.Load() > 0 })

			// Meanwhile another call is set up, carries media both ways, and
			// a third client's command is answered.
			start := time.Now()
			c.say("call", "dave")
			c.expect("ring|available|dave")
			d.expect("ring|incoming|carol")
			d.say("accept", "carol")
			c.expect("call|start|dave")
			d.expect("call|start|carol")
			c.media.put("voice")
			if got := readMedia(t, d); got != "voice" {
				t.Fatalf("dave got %q", got)
			}
			d.media.put("back")
			if got := readMedia(t, c); got != "back" {
				t.Fatalf("carol got %q", got)
			}
			b.say("lookup", "carol")
			b.expect("lookup|carol|exists")
			t.Logf("with a log sink blocked (%d lines waiting): a call set up, media both ways and a lookup in %v",
				st.blocked.Load(), time.Since(start).Round(time.Microsecond))
		})
	}
}

// blockingClient logs user in over connections whose Close blocks until
// release is closed: fakeConns as the legacy front's, or a QUIC-like
// command stream (KeptAlive, Prober) whose Close, like quic-go's
// CloseWithError, waits.
func blockingClient(h *harness, user string, quicLike bool, release chan struct{}) *client {
	h.t.Helper()
	if !quicLike {
		return h.loginWith(user, func(c *fakeConn) { c.closeGate = release })
	}
	q := &quicLikeConn{fakeConn: newFakeConn("quic-" + user)}
	q.closeGate = release
	c := h.connectConn(q.fakeConn, q)
	c.user = user
	c.say("login", user, testAccounts[user])
	c.sid = c.expect("resp|login|")[3]
	m := newFakeConn(q.origin)
	m.closeGate = release
	c.registerMediaConn(m, keptAliveMedia{m})
	return c
}

// flows checks that carol and dave, untouched by whatever blocks, can
// call, talk and hang up.
func flows(t *testing.T, c, d *client) {
	t.Helper()
	c.say("call", "dave")
	c.expect("ring|available|dave")
	d.expect("ring|incoming|carol")
	d.say("accept", "carol")
	c.expect("call|start|dave")
	d.expect("call|start|carol")
	c.media.put("voice")
	if got := readMedia(t, d); got != "voice" {
		t.Fatalf("dave got %q", got)
	}
	d.say("end", "carol")
	c.expect("call|end|dave")
}

func TestBlockingCloseDoesNotStallOthers(t *testing.T) {
	for _, quicLike := range []bool{false, true} {
		name := "legacy"
		if quicLike {
			name = "quic-like"
		}
		t.Run(name+"/relogin", func(t *testing.T) {
			h := newHarness(t, Config{})
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			old := blockingClient(h, "alice", quicLike, release)
			c, d := h.login("carol"), h.login("dave")
			fresh := h.login("alice") // the old session's connections close, slowly
			waitFor(t, func() bool { return old.cmd.closeCalls.Load() > 0 && old.media.closeCalls.Load() > 0 })
			flows(t, c, d)
			b := h.login("bob")
			fresh.say("call", "bob")
			fresh.expect("ring|available|bob")
			b.expect("ring|incoming|alice")
		})
		t.Run(name+"/vanished in a call", func(t *testing.T) {
			h := newHarness(t, Config{})
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			a := blockingClient(h, "alice", quicLike, release)
			b := h.login("bob")
			answer(a, b)
			c, d := h.login("carol"), h.login("dave")
			a.cmd.shut() // alice's phone is gone; closing her connection takes long
			b.expect("call|drop|" + b.sid)
			waitFor(t, func() bool { return a.cmd.closeCalls.Load() > 0 && a.media.closeCalls.Load() > 0 })
			flows(t, c, d)
		})
		t.Run(name+"/drain", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { // flushWait passes at once
				h := newHarness(t, Config{IdleTimeout: time.Hour})
				release := make(chan struct{})
				t.Cleanup(func() { close(release) })
				a := blockingClient(h, "alice", quicLike, release)
				stray := newFakeConn("ip-x") // never logs in
				stray.closeGate = release
				h.connectConn(stray, nil)
				c, d := h.login("carol"), h.login("dave")
				answer(c, d)
				done := shutdown(h, context.Background())
				waitFor(t, func() bool { return a.cmd.closeCalls.Load() > 0 && stray.closeCalls.Load() > 0 })
				c.say("lookup", "dave") // the call's parties carry on
				c.expect("lookup|dave|exists")
				c.media.put("voice")
				if got := readMedia(t, d); got != "voice" {
					t.Fatalf("dave got %q", got)
				}
				d.say("end", "carol")
				c.expect("call|end|dave")
				select { // and the drain ends, though two Closes still hang
				case <-done:
				case <-time.After(flushWait + 3*time.Second):
					t.Fatal("Shutdown did not return while connections took long to close")
				}
			})
		})
	}
}
