package core

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeBans records failed logins and bans whom the test says.
type fakeBans struct {
	mu     sync.Mutex
	banned bool
	failed []netip.Addr
}

func (b *fakeBans) Allow(netip.Addr) bool { b.mu.Lock(); defer b.mu.Unlock(); return !b.banned }
func (b *fakeBans) Failed(a netip.Addr)   { b.mu.Lock(); b.failed = append(b.failed, a); b.mu.Unlock() }
func (b *fakeBans) failures() int         { b.mu.Lock(); defer b.mu.Unlock(); return len(b.failed) }

// watchedAccounts are testAccounts that record each check's source, and
// refuse "throttle" as a busy check queue does.
type watchedAccounts struct {
	mu      sync.Mutex
	sources []netip.Addr
}

type throttledErr struct{}

func (throttledErr) Error() string   { return "throttled" }
func (throttledErr) Throttled() bool { return true }

func (a *watchedAccounts) Exists(name string) bool { return testAccounts.Exists(name) }
func (a *watchedAccounts) Authenticate(ctx context.Context, source netip.Addr, name, pw string) error {
	a.mu.Lock()
	a.sources = append(a.sources, source)
	a.mu.Unlock()
	if name == "throttle" {
		return throttledErr{}
	}
	return testAccounts.Authenticate(ctx, source, name, pw)
}

func (a *watchedAccounts) checks() []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]netip.Addr(nil), a.sources...)
}

func TestLoginReportsFailures(t *testing.T) {
	bans, accts := &fakeBans{}, &watchedAccounts{}
	h := newHarnessWith(t, Config{Bans: bans, ThrottledPause: time.Millisecond}, accts)
	c := h.connect("ip-x")
	steps := []struct {
		msg      string
		failures int
		result   LoginResult
	}{
		{ts() + "|login|alice|wrong", 1, LoginBadCredentials},
		{ts() + "|login|nobody|a", 2, LoginBadCredentials},
		{ts() + "|login|alice", 3, -1},       // malformed
		{"1|login|alice|a", 3, LoginInvalid}, // stale: not a guess
		{ts() + "|login|throttle|x", 3, LoginThrottled},
		{ts() + "|login|alice|a", 3, LoginOK},
	}
	for _, st := range steps {
		before := h.srv.Stats().Logins
		c.raw(st.msg)
		if st.result == LoginOK {
			c.expect("resp|login|")
		} else {
			c.expect("resp|invalid|")
		}
		if n := bans.failures(); n != st.failures {
			t.Errorf("after %q: %d failures reported, want %d", st.msg, n, st.failures)
		}
		after := h.srv.Stats().Logins
		for r := range numLoginResults {
			want := before[r.String()]
			if r == st.result {
				want++
			}
			if after[r.String()] != want {
				t.Errorf("after %q: logins %s = %d, want %d", st.msg, r, after[r.String()], want)
			}
		}
	}
	for _, src := range accts.checks() {
		if src != netip.MustParseAddr("192.0.2.1") {
			t.Errorf("Authenticate got source %v, want the connection's 192.0.2.1", src)
		}
	}
	if len(accts.checks()) != 4 {
		t.Errorf("%d checks, want 4", len(accts.checks()))
	}
}

func TestLoginFromBannedSource(t *testing.T) {
	bans, accts := &fakeBans{banned: true}, &watchedAccounts{}
	h := newHarnessWith(t, Config{Bans: bans}, accts)
	c := h.connect("ip-x")
	c.say("login", "alice", "a")
	c.expect("resp|invalid|")
	waitFor(t, c.cmd.isClosed)
	if n := len(accts.checks()); n != 0 {
		t.Errorf("%d password checks for a banned source", n)
	}
	if st := h.srv.Stats(); st.Logins["banned"] != 1 || st.LoginsRefused != 1 {
		t.Errorf("logins %v, refused %d; want 1 banned", st.Logins, st.LoginsRefused)
	}
	if bans.failures() != 0 {
		t.Error("a banned login counted as a failure")
	}
}

// TestThrottledLoginPauses: after a throttled login, or a malformed command
// before login, the connection's next command waits ThrottledPause, so
// instant refusals cannot spin.
func TestThrottledLoginPauses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarnessWith(t, Config{IdleTimeout: 24 * time.Hour}, &watchedAccounts{})
		c := h.connect("ip-x")
		start := time.Now()
		c.say("login", "throttle", "x")
		c.expect("resp|invalid|")
		if d := time.Since(start); d != 0 {
			t.Errorf("the throttled login was answered after %v, want at once", d)
		}
		c.raw(ts() + "|login|alice") // malformed: paused too
		c.expect("resp|invalid|")
		if d := time.Since(start); d != time.Second {
			t.Errorf("the command after the throttled login was answered after %v, want 1s", d)
		}
		c.say("login", "alice", "a")
		c.expect("resp|login|")
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("the login after a malformed command was answered after %v, want 2s", d)
		}
	})
}
