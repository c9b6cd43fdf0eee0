package core

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/wire"
)

func TestLoginReplyAndSessionID(t *testing.T) {
	h := newHarness(t, Config{})
	a := h.login("alice")
	id, err := strconv.ParseUint(a.sid, 10, 64)
	if err != nil || id == 0 || id > uint64(wire.MaxSessionID) {
		t.Fatalf("session id %q not in 1..2^63-1", a.sid)
	}
	b := h.login("bob")
	if a.sid == b.sid {
		t.Fatal("two sessions share an id")
	}
}

func TestRefusals(t *testing.T) {
	h := newHarness(t, Config{})
	a := h.login("alice")
	stale := strconv.FormatInt(time.Now().Add(-6*time.Minute).Unix(), 10)
	future := strconv.FormatInt(time.Now().Add(6*time.Minute).Unix(), 10)
	for _, msg := range []string{
		stale + "|lookup|bob|" + a.sid,
		future + "|lookup|bob|" + a.sid,
		ts() + "|lookup|bob|" + a.sid + "|x",
		ts() + "|lookup||" + a.sid,
		ts() + "|lookup|bob|" + a.sid + "x",
		ts() + "|lookup|bob|1",
		ts() + "|dance|bob|" + a.sid,
		ts() + "|login|alice|a", // already logged in on this connection
		"garbage",
	} {
		a.raw(msg)
		a.expect("resp|invalid|command\n")
	}
	// Before login, every command is refused; so are a wrong password and an
	// unknown user.
	c := h.connect("x")
	c.say("lookup", "bob", a.sid)
	c.expect("resp|invalid|command\n")
	c.say("login", "alice", "wrong")
	c.expect("resp|invalid|command\n")
	c.say("login", "mallory", "x")
	c.expect("resp|invalid|command\n")
	a.say("lookup", "bob")
	a.expect("lookup|bob|exists")
	a.say("lookup", "nobody")
	a.expect("lookup|nobody|doesntexist")
}

func TestKeepaliveIgnoredInEveryState(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.connect("ip-alice")
	c.raw("D") // before login
	c.user = "alice"
	c.say("login", "alice", "a")
	c.sid = c.expect("resp|login|")[3]
	c.media = newFakeConn(c.cmd.origin)
	h.wg.Go(func() { h.srv.ServeMedia(context.Background(), c.media) })
	c.media.put("D") // before registration
	c.media.put(ts() + "|" + c.sid)
	b := h.login("bob")
	waitFor(t, func() bool { return h.srv.Stats().Sessions == 2 })
	waitFor(t, func() bool {
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		return h.srv.sessions[sidOf(c.sid)].media != nil
	})
	c.raw("D") // idle
	c.say("call", "bob")
	c.expect("ring|available|bob")
	b.expect("ring|incoming|alice")
	c.raw("D")
	b.raw("DDD") // ringing
	b.say("accept", "alice")
	c.expect("call|start|bob")
	b.expect("call|start|alice")
	c.raw("D") // in a call
	c.media.put("D")
	c.media.put("frame-1")
	if got := readMedia(t, b); got != "frame-1" {
		t.Fatalf("bob got media %q, want frame-1 (keepalive relayed?)", got)
	}
	c.quiet()
	b.quiet()
}

func TestWrongPasswordDoesNotKickOnlineUser(t *testing.T) {
	h := newHarness(t, Config{})
	a := h.login("alice")
	b := h.login("bob")
	x := h.connect("ip-mallory")
	x.say("login", "alice", "wrong")
	x.expect("resp|invalid|command\n")
	a.say("call", "bob")
	a.expect("ring|available|bob")
	b.expect("ring|incoming|alice")
	if a.cmd.isClosed() || a.media.isClosed() {
		t.Fatal("a refused login closed the online user's connections")
	}
}

func TestReloginReplacesOldSession(t *testing.T) {
	h := newHarness(t, Config{})
	old := h.login("alice")
	b := h.login("bob")
	old.say("call", "bob")
	old.expect("ring|available|bob")
	b.expect("ring|incoming|alice")

	fresh := h.login("alice") // logs in again elsewhere
	if fresh.sid == old.sid {
		t.Fatal("relogin reused the old session id")
	}
	waitFor(t, func() bool { return old.cmd.isClosed() && old.media.isClosed() })
	b.expect("call|end|alice") // the old session was ringing: the callee is told
	// The new session works: call, accept, media.
	fresh.say("call", "bob")
	fresh.expect("ring|available|bob")
	b.expect("ring|incoming|alice")
	b.say("accept", "alice")
	fresh.expect("call|start|bob")
	b.expect("call|start|alice")
	fresh.media.put("hello")
	if got := readMedia(t, b); got != "hello" {
		t.Fatalf("media after relogin: %q", got)
	}
	// The old session id is dead.
	old2 := h.connect("ip-alice")
	old2.say("lookup", "bob", old.sid)
	old2.expect("resp|invalid|command\n")
}

func TestForeignSessionRefused(t *testing.T) {
	h := newHarness(t, Config{})
	a := h.login("alice")
	b := h.login("bob")
	b.say("call", "carol", a.sid) // bob presents alice's session id
	b.expect("resp|invalid|command\n")
	// Media registration from another origin than the command connection.
	m := newFakeConn("elsewhere")
	h.wg.Go(func() { h.srv.ServeMedia(context.Background(), m) })
	m.put(ts() + "|" + a.sid)
	waitFor(t, m.isClosed)
}

func TestCallNeedsCallerMedia(t *testing.T) {
	h := newHarness(t, Config{})
	h.login("bob")
	c := h.connect("ip-alice")
	c.user = "alice"
	c.say("login", "alice", "a")
	c.sid = c.expect("resp|login|")[3]
	c.say("call", "bob")
	c.expect("resp|invalid|command\n")
	// Bob calling alice, who has no media: not available.
	b := h.login("carol")
	b.say("call", "alice")
	b.expect("ring|notavailable|alice")
}

func inCall(t *testing.T, h *harness) (a, b *client) {
	t.Helper()
	a, b = h.login("alice"), h.login("bob")
	answer(a, b)
	return a, b
}

func TestDropNotices(t *testing.T) {
	t.Run("command connection dies in a call", func(t *testing.T) {
		h := newHarness(t, Config{})
		a, b := inCall(t, h)
		a.cmd.Close()
		b.expect("call|drop|" + b.sid)
		waitFor(t, a.media.isClosed) // the session ended with its command connection
	})
	t.Run("media connection dies in a call", func(t *testing.T) {
		h := newHarness(t, Config{MediaLossGrace: 10 * time.Millisecond})
		a, b := inCall(t, h)
		b.media.Close()
		a.expect("call|drop|" + a.sid)
		// Bob is still logged in and can register new media and call again.
		b.registerMedia()
		b.say("call", "alice")
		b.expect("ring|available|alice")
	})
	t.Run("command connection dies while ringing", func(t *testing.T) {
		h := newHarness(t, Config{})
		a, b := h.login("alice"), h.login("bob")
		a.say("call", "bob")
		a.expect("ring|available|bob")
		b.expect("ring|incoming|alice")
		b.cmd.Close()
		a.expect("call|end|bob")
	})
	t.Run("end then media close is an end, not a drop", func(t *testing.T) {
		h := newHarness(t, Config{})
		a, b := inCall(t, h)
		a.say("end", "bob")
		a.media.Close()
		b.expect("call|end|alice")
		b.quiet()
	})
	t.Run("re-registering within the grace keeps the call", func(t *testing.T) {
		h := newHarness(t, Config{MediaLossGrace: time.Hour})
		a, b := inCall(t, h)
		a.media.Close()
		a.registerMedia()
		a.media.put("still here")
		if got := readMedia(t, b); got != "still here" {
			t.Fatalf("media after re-registration: %q", got)
		}
		b.quiet()
	})
}

func TestMediaRelay(t *testing.T) {
	h := newHarness(t, Config{MediaQueue: 64}) // the 50-frame burst fits: no drops
	a, b := h.login("alice"), h.login("bob")
	a.media.put("before the call") // discarded
	a.media.drained(t)
	a.say("call", "bob")
	a.expect("ring|available|bob")
	b.expect("ring|incoming|alice")
	a.media.put("while ringing") // discarded
	a.media.drained(t)
	if n := h.srv.CallsInProgress(); n != 0 {
		t.Errorf("%d calls in progress while ringing, want 0", n)
	}
	b.say("accept", "alice")
	a.expect("call|start|bob")
	b.expect("call|start|alice")
	if n := h.srv.CallsInProgress(); n != 1 {
		t.Errorf("%d calls in progress, want 1", n)
	}
	var want bytes.Buffer
	for i := range 50 {
		f := bytes.Repeat([]byte{byte(i)}, 32)
		want.Write(f)
		a.media.put(string(f))
	}
	var got bytes.Buffer
	for got.Len() < want.Len() {
		got.WriteString(readMedia(t, b))
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("media not relayed byte-exact in order: got %d bytes %q..., want %d", got.Len(), got.Bytes()[:min(got.Len(), 80)], want.Len())
	}
	b.media.put("back")
	if got := readMedia(t, a); got != "back" {
		t.Fatalf("alice got %q", got)
	}
	a.say("end", "bob")
	b.expect("call|end|alice")
	a.sync()
	if n := h.srv.CallsInProgress(); n != 0 {
		t.Errorf("%d calls in progress after the call, want 0", n)
	}
	a.media.put("after the call") // discarded
	b.media.put("after the call")
	select {
	case m := <-b.media.out:
		t.Fatalf("media relayed after the call: %q", m)
	case m := <-a.media.out:
		t.Fatalf("media relayed after the call: %q", m)
	case <-time.After(100 * time.Millisecond):
	}
}

func readMedia(t *testing.T, c *client) string {
	t.Helper()
	select {
	case m := <-c.media.out:
		return string(m)
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no media within 5 s", c.user)
		return ""
	}
}

// A receiver that takes nothing loses media (drop-oldest) but never slows the
// sender or another call.
func TestSlowMediaReceiverDoesNotStallOthers(t *testing.T) {
	h := newHarness(t, Config{MediaQueue: 4})
	a, b := inCall(t, h)
	// Bob's media connection stops taking writes: fill its out channel.
	for len(b.media.out) < cap(b.media.out) {
		b.media.out <- nil
	}
	c := h.login("carol")
	for i := range 500 {
		a.media.put("frame " + strconv.Itoa(i))
	}
	// Alice's session is still responsive, and a second call flows.
	a.say("lookup", "carol")
	a.expect("lookup|carol|exists")
	c.say("lookup", "bob")
	c.expect("lookup|bob|exists")
	waitFor(t, func() bool { return h.srv.Stats().Drops["queue_head"] > 0 })
}

// TestConcurrentMedia sends media both ways at once while commands run,
// for the race detector.
func TestConcurrentMedia(t *testing.T) {
	h := newHarness(t, Config{})
	a, b := inCall(t, h)
	var wg sync.WaitGroup
	for _, c := range []*client{a, b} {
		wg.Go(func() {
			for i := range 200 {
				c.media.put(strings.Repeat("x", i%64+1))
			}
		})
	}
	wg.Wait()
	a.say("end", "bob")
	b.expect("call|end|alice")
}

func TestRegistrationRefusals(t *testing.T) {
	h := newHarness(t, Config{})
	a := h.login("alice")
	stale := itoa(time.Now().Add(-time.Hour).Unix())
	for _, tc := range []struct {
		origin, msg string
		dgram       bool
		want        transport.Refusal
	}{
		{"ip-alice", "garbage", false, transport.RefuseMalformed},
		{"ip-alice", stale + "|" + a.sid, false, transport.RefuseStale},
		{"ip-alice", ts() + "|12345", false, transport.RefuseSession},
		{"elsewhere", ts() + "|" + a.sid, false, transport.RefuseOrigin},
		{"ip-alice", ts() + "|" + a.sid + "|datagram", false, transport.RefuseDatagrams},
	} {
		m := newFakeConn(tc.origin)
		m.dgram = tc.dgram
		h.wg.Go(func() { h.srv.ServeMedia(context.Background(), m) })
		m.put(tc.msg)
		waitFor(t, m.isClosed)
		if got := transport.Refusal(m.refused.Load()); got != tc.want {
			t.Errorf("registration %q from %s: refused with %#x, want %#x", tc.msg, tc.origin, got, tc.want)
		}
	}
	// Datagram mode where the channel supports it binds.
	m := newFakeConn("ip-alice")
	m.dgram = true
	h.wg.Go(func() { h.srv.ServeMedia(context.Background(), m) })
	m.put(ts() + "|" + a.sid + "|datagram")
	waitFor(t, func() bool {
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		ep := h.srv.sessions[sidOf(a.sid)].media
		return ep != nil && ep.conn == m && ep.datagram
	})
}
