package core

import (
	"testing"
	"testing/synctest"
	"time"
)

// The timers (login deadline, idle deadline, media-loss grace) run on
// synctest's fake clock: exact, and no test waits for real.

func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{IdleTimeout: time.Minute})
		a := h.login("alice")
		time.Sleep(50 * time.Second)
		a.raw("D") // a keepalive restarts the idle clock
		synctest.Wait()
		time.Sleep(50 * time.Second)
		synctest.Wait()
		if a.cmd.isClosed() {
			t.Fatal("closed within a minute of the last keepalive")
		}
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if !a.cmd.isClosed() || !a.media.isClosed() {
			t.Fatal("silent session still open after the idle timeout")
		}
	})
}

func TestLoginDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{LoginTimeout: 30 * time.Second})
		c := h.connect("x")
		for range 5 { // keepalives do not extend the time to log in
			time.Sleep(5 * time.Second)
			c.raw("D")
		}
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if c.cmd.isClosed() {
			t.Fatal("closed before the login deadline")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !c.cmd.isClosed() {
			t.Fatal("connection that never logged in still open")
		}
	})
}

func TestMediaLossGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{MediaLossGrace: 300 * time.Millisecond})
		a, b := inCall(t, h)
		b.media.Close()
		time.Sleep(299 * time.Millisecond)
		synctest.Wait()
		if len(a.cmd.out) != 0 {
			t.Fatal("drop notice before the grace ended")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		a.expect("call|drop|" + a.sid)
	})
}

func TestReplayWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{Window: 90 * time.Second})
		a := h.login("alice")
		for _, tc := range []struct {
			skew time.Duration
			ok   bool
		}{{-90 * time.Second, true}, {90 * time.Second, true}, {-91 * time.Second, false}, {91 * time.Second, false}} {
			stamp := time.Now().Add(tc.skew).Unix()
			a.raw(itoa(stamp) + "|lookup|bob|" + a.sid)
			if tc.ok {
				a.expect("lookup|bob|exists")
			} else {
				a.expect("resp|invalid|command\n")
			}
		}
	})
}
