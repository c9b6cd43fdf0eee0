package core

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// shutdown runs Shutdown(ctx) in the background; done is closed when it
// returns.
func shutdown(h *harness, ctx context.Context) (done chan struct{}) {
	done = make(chan struct{})
	go func() {
		defer close(done)
		h.srv.Shutdown(ctx)
	}()
	return done
}

func TestDrainLetsCallsFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{IdleTimeout: 24 * time.Hour}) // silent fakes
		a, b := inCall(t, h)
		idle := h.login("carol")
		stranger := h.connect("ip-x") // never logs in
		done := shutdown(h, context.Background())
		synctest.Wait()
		if !idle.cmd.isClosed() || !idle.media.isClosed() || !stranger.cmd.isClosed() {
			t.Fatal("a session outside a call, or a connection without one, outlived the start of the drain")
		}
		if !h.srv.Draining() {
			t.Fatal("Draining() is false during the drain")
		}
		time.Sleep(10 * time.Minute) // the call goes on
		synctest.Wait()
		if a.cmd.isClosed() || b.media.isClosed() {
			t.Fatal("a call in progress was cut by the drain")
		}
		a.media.put("voice")
		if got := <-b.media.out; string(got) != "voice" {
			t.Fatalf("media during the drain: %q", got)
		}
		a.say("call", "carol") // no new calls
		a.expect("resp|invalid|")
		select {
		case <-done:
			t.Fatal("Shutdown returned while a call was up")
		default:
		}
		a.say("end", "bob")
		b.expect("call|end|alice")
		<-done
		if !a.cmd.isClosed() || !b.cmd.isClosed() || !a.media.isClosed() {
			t.Fatal("the call's sessions are still open after the drain")
		}
		if n := h.srv.Stats().CallsEnded["hangup"]; n != 1 {
			t.Errorf("calls ended by hang-up: %d, want 1", n)
		}
	})
}

// TestDrainAnswersWhatFollowsTheHangUp: a party that hangs up during the
// drain and sends a command after it, as package client's "lookup" barrier
// behind its "end", gets the reply before its connection closes, even
// when the drain looks for ended calls in between. A client that goes on
// sending is closed drainSettle later all the same.
func TestDrainAnswersWhatFollowsTheHangUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{IdleTimeout: 24 * time.Hour}) // silent fakes
		a, b := inCall(t, h)
		done := shutdown(h, context.Background())
		synctest.Wait()
		a.say("end", "bob")
		b.expect("call|end|alice")
		time.Sleep(3 * drainCheck) // the drain has looked since the call ended
		synctest.Wait()
		if a.cmd.isClosed() {
			t.Fatal("the party that hung up was closed right after its hang-up")
		}
		a.say("lookup", "bob")
		a.expect("lookup|bob|exists")
		<-done
		if !a.cmd.isClosed() || !b.cmd.isClosed() {
			t.Fatal("the sessions are still open after the drain")
		}

		// A client that keeps sending commands is closed drainSettle after
		// its call ended.
		h = newHarness(t, Config{IdleTimeout: 24 * time.Hour})
		a, _ = inCall(t, h)
		start := time.Now()
		done = shutdown(h, context.Background())
		synctest.Wait()
		a.say("end", "bob")
		for i := 0; !a.cmd.isClosed() && i < 100; i++ {
			time.Sleep(drainQuiet / 2)
			a.say("lookup", "bob")
			synctest.Wait()
		}
		<-done
		if d := time.Since(start); d < drainSettle || d > drainSettle+drainQuiet+drainCheck {
			t.Errorf("a chatty client held the drain %v after its call ended, want about %v", d, drainSettle)
		}
	})
}

func TestDrainTimeIsUpNoticesThenCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{IdleTimeout: 24 * time.Hour}) // silent fakes
		a, b := inCall(t, h)
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		done := shutdown(h, ctx)
		time.Sleep(time.Hour - time.Second)
		synctest.Wait()
		if a.cmd.isClosed() {
			t.Fatal("closed before the drain time was up")
		}
		<-done
		a.expect("call|drop|" + a.sid)
		b.expect("call|drop|" + b.sid)
		if !a.cmd.isClosed() || !b.cmd.isClosed() {
			t.Fatal("connections open after the drain")
		}
		if n := h.srv.Stats().CallsEnded["shutdown"]; n != 1 {
			t.Errorf("calls ended by shutdown: %d, want 1", n)
		}
	})
}

// swappable are accounts a test can change while the server runs.
type swappable struct{ p atomic.Pointer[fakeAccounts] }

func (s *swappable) Exists(name string) bool { return s.p.Load().Exists(name) }
func (s *swappable) Authenticate(ctx context.Context, source netip.Addr, name, pw string) error {
	return s.p.Load().Authenticate(ctx, source, name, pw)
}

func TestLogOutRemoved(t *testing.T) {
	accts := &swappable{}
	all := fakeAccounts{"alice": "a", "bob": "b", "carol": "c"}
	accts.p.Store(&all)
	h := newHarnessWith(t, Config{}, accts)
	a, b := inCall(t, h)
	carol := h.login("carol")

	without := fakeAccounts{"alice": "a", "carol": "c"} // bob removed
	accts.p.Store(&without)
	if n := h.srv.LogOutRemoved(); n != 1 {
		t.Fatalf("LogOutRemoved = %d, want 1", n)
	}
	a.expect("call|drop|" + a.sid)
	waitFor(t, func() bool { return b.cmd.isClosed() && b.media.isClosed() })
	carol.quiet()
	a.quiet()
	var wg sync.WaitGroup // bob can't log in again
	wg.Go(func() {
		again := h.connect("ip-bob")
		again.say("login", "bob", "b")
		again.expect("resp|invalid|")
	})
	wg.Wait()
}
