package core

import (
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestCommandRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{CommandBurst: 5, CommandRate: 2, IdleTimeout: 24 * time.Hour})
		a := h.login("alice") // the login took a token
		for range 4 {
			a.say("lookup", "bob")
			a.expect("lookup|bob|exists")
		}
		a.say("lookup", "bob")
		a.expect("resp|invalid|command\n") // over the burst
		for range 50 {
			a.raw("D") // keepalives are free
		}
		time.Sleep(500 * time.Millisecond) // one token at 2 a second
		a.say("lookup", "bob")
		a.expect("lookup|bob|exists")
		a.say("lookup", "bob")
		a.expect("resp|invalid|command\n")
		time.Sleep(time.Hour) // a full bucket again, no more
		for range 5 {
			a.say("lookup", "bob")
			a.expect("lookup|bob|exists")
		}
		a.say("lookup", "bob")
		a.expect("resp|invalid|command\n")
		st := h.srv.Stats()
		if st.RateLimited != 3 || st.Invalid != 3 || st.Flooders != 0 {
			t.Fatalf("RateLimited %d, Invalid %d, Flooders %d; want 3, 3, 0", st.RateLimited, st.Invalid, st.Flooders)
		}
		if a.cmd.isClosed() {
			t.Fatal("a client over its rate for a moment was disconnected")
		}
	})
}

func TestCommandFloodClosesTheSender(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, Config{CommandBurst: 5, CommandRate: 2, IdleTimeout: time.Hour})
		a, b := h.login("alice"), h.login("bob")
		// The burst (less the login's token), then 3 × burst refused: closed.
		for i := 0; i < 4+3*5; i++ {
			a.say("lookup", "bob")
		}
		synctest.Wait()
		if !a.cmd.isClosed() || !a.media.isClosed() {
			t.Fatal("a flooding client is still connected")
		}
		if st := h.srv.Stats(); st.Flooders != 1 || st.RateLimited != 3*5 {
			t.Fatalf("Flooders %d, RateLimited %d; want 1, 15", st.Flooders, st.RateLimited)
		}
		b.say("lookup", "alice")
		b.expect("lookup|alice|exists")
		// Refusals spread wider than floodWindow close nothing.
		c := h.login("carol")
		for range 10 {
			time.Sleep(6 * time.Second) // a full bucket
			for range 2 * 5 {
				c.say("lookup", "bob") // 5 allowed, 5 refused: 10 in a window at most
			}
		}
		synctest.Wait()
		if c.cmd.isClosed() {
			t.Fatal("a client refused now and then was closed as a flood")
		}
	})
}

// pacedClient logs user in with a command channel whose writes each wait
// pace: a client that reads its replies slowly but steadily. Its replies
// are read into the returned channel.
func pacedClient(t *testing.T, h *harness, user string, pace time.Duration) (*client, *replyLog) {
	c := h.loginWith(user, func(fc *fakeConn) { fc.pace = pace })
	return c, readReplies(h, c)
}

// replyLog counts a client's replies by their kind|sub, read as they come.
type replyLog struct {
	mu     sync.Mutex
	counts map[string]int
	lookup chan string // lookup replies, for a liveness check
}

func (r *replyLog) count(kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[kind]
}

func (r *replyLog) add(m []byte) {
	f := strings.Split(strings.TrimSpace(string(m)), "|")
	if len(f) < 3 {
		return
	}
	r.mu.Lock()
	r.counts[f[1]+"|"+f[2]]++
	r.mu.Unlock()
	if f[1] == "lookup" {
		r.lookup <- string(m)
	}
}

// readReplies reads c's replies until c's command channel closes.
func readReplies(h *harness, c *client) *replyLog {
	r := &replyLog{counts: map[string]int{}, lookup: make(chan string, 16)}
	h.wg.Go(func() {
		for {
			select {
			case m := <-c.cmd.out:
				r.add(m)
			case <-c.cmd.closed:
				for len(c.cmd.out) > 0 { // what was written before
					r.add(<-c.cmd.out)
				}
				return
			}
		}
	})
	return r
}

// A client in a call/end flood aimed at another cannot get the other
// disconnected, however slowly (but steadily) the other reads: notices to
// a crowded client are refused (the call is answered busy), and the
// sender is rate-limited and closed.
func TestCallFloodCannotCutOffTheCallee(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"defaults", Config{}},
		{"no rate limit", Config{CommandBurst: 1 << 30, CommandRate: 1 << 30}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg)
			attacker := h.login("alice")
			victim, seen := pacedClient(t, h, "bob", 3*time.Millisecond)
			sent := readReplies(h, attacker)
			start := time.Now()
			var closedAfter time.Duration
			pairs := 0
			// Bursts of 40 call/end pairs, 20 ms apart, until the server
			// closes the attacker: with the default limits (200 burst,
			// 50/s) the flood rule needs 600 refusals, some 8 bursts.
			bursts := 40
			if tc.cfg.CommandRate != 0 {
				bursts = 5 // no limit: the crowded rule alone protects the victim
			}
		attack:
			for range bursts {
				for range 40 {
					if !attacker.cmd.put(ts()+"|call|bob|"+attacker.sid) || !attacker.cmd.put(ts()+"|end|bob|"+attacker.sid) {
						closedAfter = time.Since(start)
						break attack
					}
					pairs++
				}
				time.Sleep(20 * time.Millisecond)
			}
			if closedAfter == 0 && tc.cfg.CommandRate == 0 {
				waitFor(t, attacker.cmd.isClosed)
				closedAfter = time.Since(start)
			}
			if victim.cmd.isClosed() {
				t.Fatal("the victim was disconnected")
			}
			victim.say("lookup", "alice")
			select {
			case m := <-seen.lookup:
				if !strings.Contains(m, "|lookup|alice|") {
					t.Fatalf("victim got %q", m)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the victim's lookup was not answered")
			}
			st := h.srv.Stats()
			t.Logf("%d pairs sent; victim connected, got %d ring|incoming, %d call|end; attacker refused %d "+
				"(read %d invalid, %d busy), rate-limited %d, closed after %v (flood %d, slow consumer %d)",
				pairs, seen.count("ring|incoming"), seen.count("call|end"), st.Invalid+st.CrowdedBusy,
				sent.count("resp|invalid"), sent.count("ring|busy"), st.RateLimited, closedAfter.Round(time.Millisecond),
				st.Flooders, st.SlowConsumers)
			// The attacker is closed by the flood rule, or as a slow consumer of
			// its own refusals if its reader lags: either way for what it did.
			if tc.cfg.CommandRate == 0 && st.Flooders+st.SlowConsumers != 1 {
				t.Fatalf("Flooders %d, SlowConsumers %d: want the attacker closed, once", st.Flooders, st.SlowConsumers)
			}
			if tc.cfg.CommandRate != 0 && st.CrowdedBusy == 0 {
				t.Fatal("no call was answered busy for a crowded callee")
			}
		})
	}
}
