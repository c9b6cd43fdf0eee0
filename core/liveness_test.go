package core

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtcall/dtcall/transport"
)

// Channels whose transport watches the peer (QUIC) carry no idle deadline
// of the core's, and their command channel is probed during calls only.
// These run on synctest's clock: 30-minute calls and idle hours in
// milliseconds.

// quicLikeConn is a command channel like a QUIC stream: KeptAlive, and a
// Prober that counts the core's probes and fails them once failing is set.
type quicLikeConn struct {
	*fakeConn
	probes  atomic.Int64
	failing atomic.Bool
}

func (q *quicLikeConn) KeptAlive() {}

func (q *quicLikeConn) Probe() error {
	q.probes.Add(1)
	if q.failing.Load() {
		return errors.New("nothing from the client")
	}
	return nil
}

// keptAliveMedia is a media channel like a QUIC media stream.
type keptAliveMedia struct{ *fakeConn }

func (keptAliveMedia) KeptAlive() {}

var (
	_ transport.Prober    = (*quicLikeConn)(nil)
	_ transport.KeptAlive = keptAliveMedia{}
)

// loginQUICLike logs user in over a quicLikeConn with keptAliveMedia.
func (h *harness) loginQUICLike(user string) (*client, *quicLikeConn) {
	h.t.Helper()
	q := &quicLikeConn{fakeConn: newFakeConn("quic-" + user)}
	c := &client{h: h, user: user, cmd: q.fakeConn}
	h.wg.Go(func() { h.srv.ServeCommand(context.Background(), q) })
	c.say("login", user, testAccounts[user])
	c.sid = c.expect("resp|login|")[3]
	m := newFakeConn(q.origin)
	c.registerMediaConn(m, keptAliveMedia{m})
	return c, q
}

// answer has a call b and b accept.
func answer(a, b *client) {
	a.say("call", b.user)
	a.expect("ring|available|" + b.user)
	b.expect("ring|incoming|" + a.user)
	b.say("accept", a.user)
	a.expect("call|start|" + b.user)
	b.expect("call|start|" + a.user)
}

func TestKeptAliveChannelsOutliveTheCoreTimers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{LoginTimeout: 30 * time.Second, IdleTimeout: time.Minute})
		a, qa := h.loginQUICLike("alice")
		b, qb := h.loginQUICLike("bob")
		legacy := h.login("carol") // the control: its idle timeout still runs

		time.Sleep(30 * time.Minute) // idle, logged in, media registered
		synctest.Wait()
		for _, c := range []*client{a, b} {
			if c.cmd.isClosed() || c.media.isClosed() {
				t.Fatalf("%s: an idle QUIC-like session was closed by the core's timers", c.user)
			}
		}
		if !legacy.cmd.isClosed() {
			t.Fatal("a silent legacy session outlived its idle timeout")
		}
		if n := qa.probes.Load() + qb.probes.Load(); n != 0 {
			t.Fatalf("%d probes while idle; want none (a phone's battery)", n)
		}

		answer(a, b)
		for minute := range 30 { // a 30-minute call, a frame each way every minute
			time.Sleep(time.Minute)
			a.media.put("from-alice")
			b.media.put("from-bob")
			for _, c := range []struct {
				at   *client
				want string
			}{{b, "from-alice"}, {a, "from-bob"}} {
				select {
				case got := <-c.at.media.out:
					if string(got) != c.want {
						t.Fatalf("minute %d: %s got %q, want %q", minute, c.at.user, got, c.want)
					}
				case <-time.After(time.Second):
					t.Fatalf("minute %d: %s got no media", minute, c.at.user)
				}
			}
		}
		synctest.Wait()
		probes := qa.probes.Load()
		want := int64(30*time.Minute/transport.ProbeInterval) + 30 // and the frames' waits
		if probes < want-40 || probes > want+40 {
			t.Errorf("alice was probed %d times in a 30-minute call, want about %d (one per %v)", probes, want, transport.ProbeInterval)
		}
		a.say("end", "bob")
		b.expect("call|end|alice")
		a.quiet()
		synctest.Wait()
		after := qa.probes.Load()
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := qa.probes.Load() - after; n != 0 {
			t.Errorf("%d probes in the hour after the call, want none", n)
		}
		a.quiet()
		b.quiet()
	})
}

func TestUnresponsiveClientInCallDropsThePeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{})
		a, qa := h.loginQUICLike("alice")
		b, _ := h.loginQUICLike("bob")
		answer(a, b)
		time.Sleep(time.Second)
		qa.failing.Store(true)
		time.Sleep(transport.ProbeInterval)
		synctest.Wait()
		if !a.cmd.isClosed() {
			t.Fatal("a client whose probe failed is still connected")
		}
		b.expect("call|drop|" + b.sid)
		if got := h.srv.Stats().Unresponsive; got != 1 {
			t.Errorf("Unresponsive = %d, want 1", got)
		}
	})
}
