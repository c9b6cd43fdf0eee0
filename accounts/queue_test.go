package accounts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// slowStore returns a Store with slots check slots whose checks each take
// d (of synctest's fake time) and fail; started returns the passwords of
// the checks started so far, in order. Tests put the source in the
// password to see who was served when.
func slowStore(t *testing.T, slots int, d time.Duration) (s *Store, started func() []string) {
	t.Helper()
	s = cheapStore(t, slots)
	var mu sync.Mutex
	var order []string
	s.verify = func(h Hash, password string) bool {
		mu.Lock()
		order = append(order, password)
		mu.Unlock()
		time.Sleep(d)
		return false
	}
	return s, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(order)
	}
}

// addr returns 192.0.2.n.
func addr(n int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(n)}) }

func isThrottled(err error) bool {
	var te interface{ Throttled() bool }
	return errors.As(err, &te) && te.Throttled()
}

// TestQueueFairAcrossSources: a source with checks waiting delays another
// source's first check by the check running, not by its whole queue.
func TestQueueFairAcrossSources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, started := slowStore(t, 1, time.Second)
		for i := range 4 { // 1 running, 3 waiting
			go s.Authenticate(context.Background(), addr(1), "alice", fmt.Sprint("A", i))
			synctest.Wait()
		}
		time.Sleep(500 * time.Millisecond)
		start := time.Now()
		if err := s.Authenticate(context.Background(), addr(2), "alice", "B"); err != ErrBadCredentials {
			t.Errorf("B: %v", err)
		}
		if d := time.Since(start); d != 1500*time.Millisecond {
			t.Errorf("B's login took %v, want 1.5s: the rest of A0's check and its own", d)
		}
		time.Sleep(time.Hour)
		if got, want := started(), []string{"A0", "B", "A1", "A2", "A3"}; !slices.Equal(got, want) {
			t.Errorf("checks ran in the order %q, want %q", got, want)
		}
	})
}

// TestQueueOrder: the source with the fewest checks pending goes next, so
// a newcomer and a source with a single check go before a flooder, round
// by round.
func TestQueueOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, started := slowStore(t, 1, time.Second)
		for _, name := range []string{"A0", "A1", "A2", "B0", "B1"} {
			go s.Authenticate(context.Background(), addr(int(name[0])), "alice", name)
			synctest.Wait()
		}
		time.Sleep(1500 * time.Millisecond) // A0 ran; B0 runs
		go s.Authenticate(context.Background(), addr(int('C')), "alice", "C0")
		time.Sleep(time.Hour)
		// Round robin would run C0 after A1 and B1.
		want := []string{"A0", "B0", "C0", "B1", "A1", "A2"}
		if got := started(); !slices.Equal(got, want) {
			t.Errorf("checks ran in the order %q, want %q", got, want)
		}
	})
}

// TestSchedulerPicks pins the order of nextLocked: fewest pending (waiting
// and running) first, then least recently served, then first arrived.
func TestSchedulerPicks(t *testing.T) {
	type src struct {
		name             string
		waiting, running int
		served, arrival  uint64
	}
	tests := []struct {
		srcs []src
		want string
	}{
		{[]src{{"flood", 3, 0, 1, 1}, {"user", 1, 0, 9, 2}}, "user"},          // served recently, but asks once
		{[]src{{"flood", 2, 1, 1, 1}, {"user", 2, 0, 9, 2}}, "user"},          // running checks count
		{[]src{{"a", 1, 0, 5, 1}, {"b", 1, 0, 3, 2}, {"c", 1, 0, 4, 3}}, "b"}, // least recently served
		{[]src{{"a", 1, 0, 0, 2}, {"b", 1, 0, 0, 1}, {"c", 1, 0, 7, 0}}, "b"}, // never served, first arrived
		{[]src{{"old", 1, 0, 2, 9}, {"new", 1, 0, 0, 10}}, "new"},             // never served before served
		{[]src{{"a", 4, 0, 1, 1}, {"b", 3, 1, 2, 2}, {"c", 2, 2, 0, 3}}, "c"}, // 4 pending each: c never served
		{[]src{{"only", 1, 3, 100, 1}}, "only"},                               // alone
	}
	for i, tt := range tests {
		s := newScheduler(1)
		names := map[netip.Prefix]string{}
		for j, x := range tt.srcs {
			key := netip.PrefixFrom(addr(j), 32)
			names[key] = x.name
			q := &sourceQueue{key: key, arrival: x.arrival}
			for range x.waiting {
				q.waiters = append(q.waiters, &waiter{})
			}
			s.waiting[key] = q
			if x.running > 0 {
				s.running[key] = x.running
			}
			if x.served > 0 {
				s.served[key] = x.served
			}
		}
		if got := names[s.nextLocked().key]; got != tt.want {
			t.Errorf("case %d: picked %s, want %s", i, got, tt.want)
		}
	}
}

// TestQueueFlood is the login-flood figure in miniature: 4 sources × 3
// callers looping failed logins on 0.8 s checks through one slot; a fifth
// source's login takes at most two checks, every time. (The flood's own
// checks wait about 12 checks each, and some of them exceed Limits.Wait.)
func TestQueueFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const check = 800 * time.Millisecond
		s, _ := slowStore(t, 1, check)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for src := range 4 {
			for range 3 {
				wg.Go(func() {
					for i := 0; i < 1000 && ctx.Err() == nil; i++ {
						s.Authenticate(ctx, addr(10+src), "alice", "flood")
					}
				})
			}
		}
		time.Sleep(500 * time.Millisecond) // the first try comes in the flood's first round
		for try := range 5 {
			start := time.Now()
			if err := s.Authenticate(context.Background(), addr(99), "bob", "wrong"); err != ErrBadCredentials {
				t.Errorf("try %d: %v", try, err)
			}
			if d := time.Since(start); d > 2*check {
				t.Errorf("try %d: the legitimate login took %v, want at most %v", try, d, 2*check)
			}
			time.Sleep(time.Second) // less than a round of the flood: the user is served more often than each flooder
		}
		cancel()
		wg.Wait()
	})
}

func TestQueueSourceCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, started := slowStore(t, 1, time.Second)
		for i := range 1 + DefaultPerSource { // 1 running, 4 waiting
			go s.Authenticate(context.Background(), addr(1), "alice", fmt.Sprint("A", i))
			synctest.Wait()
		}
		start := time.Now()
		err := s.Authenticate(context.Background(), addr(1), "alice", "A-over")
		if !isThrottled(err) || time.Since(start) != 0 {
			t.Errorf("a 5th waiting check of one source: %v after %v, want throttled at once", err, time.Since(start))
		}
		if err == nil || err.Error() != "authenticate: throttled: "+whySource {
			t.Errorf("error %q", err)
		}
		done := make(chan error)
		go func() { done <- s.Authenticate(context.Background(), addr(2), "alice", "B") }()
		if err := <-done; err != ErrBadCredentials {
			t.Errorf("another source beside a capped one: %v", err)
		}
		time.Sleep(time.Hour)
		if st := s.Stats(); st.Throttled != 1 || st.Checks != 6 || st.Waiting != 0 || st.InFlight != 0 {
			t.Errorf("Stats() = %+v", st)
		}
		if slices.Contains(started(), "A-over") {
			t.Error("the throttled login was checked")
		}
	})
}

// TestQueueSourceIsSlash64 checks that IPv6 addresses of one /64 share a
// source's cap, and IPv4-mapped addresses count as IPv4.
func TestQueueSourceIsSlash64(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := slowStore(t, 1, time.Second)
		for i := range 1 + DefaultPerSource {
			a := netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i+1))
			go s.Authenticate(context.Background(), a, "alice", "x")
			synctest.Wait()
		}
		tests := []struct {
			addr      string
			throttled bool
		}{
			{"2001:db8::ffff:1", true},
			{"2001:db8:0:0:8000::1", true},
			{"2001:db8:0:1::1", false},
			{"::ffff:192.0.2.1", false},
		}
		for _, tt := range tests {
			done := make(chan error, 1)
			go func() { done <- s.Authenticate(context.Background(), netip.MustParseAddr(tt.addr), "alice", "x") }()
			synctest.Wait()
			select {
			case err := <-done:
				if !tt.throttled || !isThrottled(err) {
					t.Errorf("%s: %v at once", tt.addr, err)
				}
			default:
				if tt.throttled {
					t.Errorf("%s waits; want it throttled with its /64", tt.addr)
				}
			}
		}
		time.Sleep(time.Hour)
	})
}

// TestQueueTotalCap: before any check of the lane has finished there is no
// average check time, and Limits.Queue is a hard cap.
func TestQueueTotalCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := slowStore(t, 1, time.Second)
		s.SetLimits(Limits{Queue: 3})
		for i := range 4 { // 1 running, 3 waiting, each its own source
			go s.Authenticate(context.Background(), addr(i), "alice", "x")
			synctest.Wait()
		}
		err := s.Authenticate(context.Background(), addr(9), "alice", "x")
		if !isThrottled(err) || err.Error() != "authenticate: throttled: "+whyQueue {
			t.Errorf("a check beyond the queue's cap: %v, want throttled at once", err)
		}
		if st := s.Stats(); st.Waiting != 3 || st.Sources != 3 || st.InFlight != 1 {
			t.Errorf("Stats() = %+v", st)
		}
		time.Sleep(time.Hour)
	})
}

// TestQueueWaitBound: a login that gets no slot within Limits.Wait is
// refused then, without a check, and the slot is not lost.
func TestQueueWaitBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, started := slowStore(t, 1, 20*time.Second)
		go s.Authenticate(context.Background(), addr(1), "alice", "long")
		synctest.Wait()
		start := time.Now()
		err := s.Authenticate(context.Background(), addr(2), "alice", "late")
		if !isThrottled(err) || err.Error() != "authenticate: throttled: "+whyWait {
			t.Errorf("Authenticate: %v, want throttled", err)
		}
		if d := time.Since(start); d != DefaultWait {
			t.Errorf("refused after %v, want %v", d, DefaultWait)
		}
		time.Sleep(time.Minute)
		if got := started(); !slices.Equal(got, []string{"long"}) {
			t.Errorf("checks %q, want only the first", got)
		}
		if st := s.Stats(); st.InFlight != 0 || st.Waiting != 0 || st.Throttled != 1 {
			t.Errorf("Stats() = %+v", st)
		}
	})
}

// TestQueueGiveUpAsGranted: when a waiting login gives up at the moment
// its slot is granted, the slot passes on and none is lost, and the lane's
// average check time does not count it.
func TestQueueGiveUpAsGranted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := slowStore(t, 1, time.Second)
		s.SetLimits(Limits{Wait: time.Second}) // expires as the first check ends
		go s.Authenticate(context.Background(), addr(1), "alice", "first")
		synctest.Wait()
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() { s.Authenticate(context.Background(), addr(2+i), "alice", "x") })
		}
		wg.Wait()
		time.Sleep(time.Hour)
		if st := s.Stats(); st.InFlight != 0 || st.Waiting != 0 {
			t.Fatalf("Stats() = %+v: a slot leaked", st)
		}
		start := time.Now()
		s.Authenticate(context.Background(), addr(9), "alice", "after")
		if d := time.Since(start); d != time.Second {
			t.Errorf("a login after the race took %v, want one check", d)
		}
		// A slot granted as its waiter gave up ran no check: it does not
		// count in the average, which holds the two 1 s checks only.
		if q := s.lanes[laneCheap]; q.avg != time.Second {
			t.Errorf("average check %v, want 1s", q.avg)
		}
	})
}

// TestQueueSameSourceInOrder: one source's checks run in arrival order.
func TestQueueSameSourceInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, started := slowStore(t, 2, time.Second)
		var want []string
		for i := range 6 {
			pw := fmt.Sprint(i)
			want = append(want, pw)
			go s.Authenticate(context.Background(), addr(1+i%2), "alice", pw)
			synctest.Wait()
		}
		time.Sleep(time.Hour)
		got := started()
		for _, src := range []int{0, 1} {
			var g, w []string
			for i := range got {
				if int(got[i][0]-'0')%2 == src {
					g = append(g, got[i])
				}
				if int(want[i][0]-'0')%2 == src {
					w = append(w, want[i])
				}
			}
			if !slices.Equal(g, w) {
				t.Errorf("source %d's checks ran as %q, want %q", src, g, w)
			}
		}
	})
}

// TestQueueForgets checks that served stays bounded.
func TestQueueForgets(t *testing.T) {
	s, _ := slowStore(t, 1, 0)
	for i := range 3 * forgetAfter {
		s.Authenticate(context.Background(), netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), "alice", "x")
	}
	if n := len(s.lanes[laneCheap].served); n > forgetAfter {
		t.Errorf("served holds %d sources, want at most %d", n, forgetAfter)
	}
}

// TestQueueAverage pins observeLocked: the first check seeds the average,
// each later one moves it by 1/8 of the difference, counting at most
// twice the average plus 1 ms.
func TestQueueAverage(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		held []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{8 * ms}, 8 * ms},
		{[]time.Duration{0}, 0},
		{[]time.Duration{8 * ms, 16 * ms}, 9 * ms},
		{[]time.Duration{8 * ms, 16 * ms, 0}, 7875 * time.Microsecond},
		{[]time.Duration{0, 8 * ms}, ms / 8},                                 // 8 ms counts as 1 ms
		{[]time.Duration{ms, 300 * ms}, ms + 2*ms/8},                         // a stall counts as 3 ms
		{[]time.Duration{ms, 300 * ms, 300 * ms}, 1531250 * time.Nanosecond}, // lasting: up by 1/8 each
		{[]time.Duration{ms, ms, ms, ms}, ms},
	}
	for _, tt := range tests {
		s := newScheduler(1)
		for _, d := range tt.held {
			s.observeLocked(d)
		}
		if s.avg != tt.want || s.timed != (len(tt.held) > 0) {
			t.Errorf("after checks of %v: average %v (timed %v), want %v", tt.held, s.avg, s.timed, tt.want)
		}
	}
}

// TestQueueAverageFromGrant: a check is timed from the grant of its slot
// to its release, so time spent waiting does not count.
func TestQueueAverageFromGrant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := slowStore(t, 1, time.Second)
		var wg sync.WaitGroup
		for i := range 3 { // the second waits 1 s, the third 2 s
			wg.Go(func() { s.Authenticate(context.Background(), addr(i), "alice", "x") })
			synctest.Wait()
		}
		wg.Wait()
		if q := s.lanes[laneCheap]; !q.timed || q.avg != time.Second {
			t.Errorf("average %v (timed %v) after three 1 s checks, want 1s", q.avg, q.timed)
		}
	})
}

// many returns 10.0.x.y for i = x*256 + y: a source of its own per i.
func many(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }

// TestQueueSoftCapCheap is the reconnect storm in miniature: 200 logins
// from 200 sources arrive within 50 ms at a lane of 2 slots whose checks
// take 1 ms, with Queue 16. About 100 wait at once, far more than Queue,
// but none can expect to wait more than about 50 ms, well within
// Limits.Wait/2: all of them are checked, none refused.
func TestQueueSoftCapCheap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const logins, queue = 200, 16
		s, _ := slowStore(t, 2, time.Millisecond)
		s.SetLimits(Limits{Queue: queue})
		s.Authenticate(context.Background(), addr(1), "alice", "seed") // an average
		errs := make(chan error, logins)
		mostWaiting := 0
		for i := range logins {
			go func() { errs <- s.Authenticate(context.Background(), many(i), "alice", "x") }()
			time.Sleep(250 * time.Microsecond) // 4 arrive per ms, 2 are served
			mostWaiting = max(mostWaiting, s.Stats().Waiting)
		}
		failed, first := 0, error(nil)
		for range logins {
			if err := <-errs; err != ErrBadCredentials {
				failed, first = failed+1, cmp.Or(first, err)
			}
		}
		if failed > 0 {
			t.Errorf("%d of %d logins of the storm failed, the first with %v", failed, logins, first)
		}
		if mostWaiting <= queue {
			t.Errorf("at most %d checks waited at once; the test needs more than Queue (%d)", mostWaiting, queue)
		}
		if st := s.Stats(); st.Throttled != 0 || st.Checks != logins+1 {
			t.Errorf("Stats() = %+v", st)
		}
	})
}

// TestQueueSoftCapCostly: with checks of 200 ms through one slot, Queue 4
// and Wait 1 s, a check beyond the 4 waiting could expect to wait 1 s,
// more than half of Wait: it is refused at once, as with no average.
func TestQueueSoftCapCostly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, started := slowStore(t, 1, 200*time.Millisecond)
		s.SetLimits(Limits{Queue: 4, Wait: time.Second})
		s.Authenticate(context.Background(), addr(1), "alice", "seed") // an average
		// 1 running, 4 waiting, each its own source.
		for i := range 5 {
			go s.Authenticate(context.Background(), addr(10+i), "alice", "x")
			synctest.Wait()
		}
		start := time.Now()
		err := s.Authenticate(context.Background(), addr(99), "alice", "over")
		if !isThrottled(err) || err.Error() != "authenticate: throttled: "+whyQueue || time.Since(start) != 0 {
			t.Errorf("a costly check beyond Queue: %v after %v, want throttled (%s) at once", err, time.Since(start), whyQueue)
		}
		if st := s.Stats(); st.Waiting != 4 || st.InFlight != 1 {
			t.Errorf("Stats() = %+v", st)
		}
		time.Sleep(time.Hour)
		if slices.Contains(started(), "over") {
			t.Error("the throttled login was checked")
		}
	})
}

// TestQueueHardCeiling: however short the checks, at most 8 × Queue wait;
// the next is refused at once.
func TestQueueHardCeiling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const queue = 4
		s, _ := slowStore(t, 1, time.Microsecond)
		s.SetLimits(Limits{Queue: queue})
		s.Authenticate(context.Background(), addr(1), "alice", "seed") // an average
		// 1 running, 32 waiting, each its own source.
		for i := range 1 + queueCeiling*queue {
			go s.Authenticate(context.Background(), many(i), "alice", "x")
			synctest.Wait()
		}
		if st := s.Stats(); st.Waiting != queueCeiling*queue || st.Throttled != 0 {
			t.Errorf("Stats() = %+v, want %d waiting, none throttled", st, queueCeiling*queue)
		}
		err := s.Authenticate(context.Background(), many(1000), "alice", "x")
		if !isThrottled(err) || err.Error() != "authenticate: throttled: "+whyQueue {
			t.Errorf("a check beyond 8 × Queue: %v, want throttled (%s) at once", err, whyQueue)
		}
		time.Sleep(time.Hour)
	})
}

// TestQueueFull pins queueFullLocked's rule.
func TestQueueFull(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		total, queue, slots int
		avg                 time.Duration // < 0: no check finished
		wait                time.Duration
		full                bool
	}{
		{3, 4, 1, -1, time.Second, false},               // below Queue
		{4, 4, 1, -1, time.Second, true},                // at Queue, no average
		{3, 4, 1, 10 * time.Second, time.Second, false}, // below Queue, however long the wait (no early refusal)
		{4, 4, 1, ms, 10 * time.Second, false},          // 5 ms
		{4, 4, 1, 200 * ms, time.Second, true},          // 1 s > 500 ms
		{4, 4, 2, 200 * ms, time.Second, false},         // 500 ms: at most half of Wait
		{4, 4, 2, 201 * ms, time.Second, true},          // 502.5 ms
		{31, 4, 1, 0, time.Second, false},               // just below the ceiling
		{32, 4, 1, 0, time.Second, true},                // the ceiling, however short the checks
		{99, 16, 2, ms, 10 * time.Second, false},        // the storm: 50 ms
	}
	for i, tt := range tests {
		s := newScheduler(tt.slots)
		s.setLimits(Limits{Queue: tt.queue, Wait: tt.wait})
		s.total = tt.total
		if tt.avg >= 0 {
			s.observeLocked(tt.avg)
		}
		if got := s.queueFullLocked(); got != tt.full {
			t.Errorf("case %d (%d waiting, Queue %d, %d slots, average %v, Wait %v): full %v, want %v",
				i, tt.total, tt.queue, tt.slots, tt.avg, tt.wait, got, tt.full)
		}
	}
}

// TestSchedulerWidensWhileBusy: with widenWhile, the lane runs its wide
// limit only while widen() is true (calls in progress: the checks run in
// the idle-priority worker) and its slots otherwise, so that with no call
// in progress a flooder cannot hold a second slot ahead of a newcomer.
func TestSchedulerWidensWhileBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScheduler(1)
		var mu sync.Mutex
		busy := false
		setBusy := func(b bool) { mu.Lock(); busy = b; mu.Unlock() }
		s.widenWhile(func() bool { mu.Lock(); defer mu.Unlock(); return busy }, 3)
		ctx := context.Background()
		src := func(n int) netip.Prefix { return netip.PrefixFrom(addr(n), 32) }
		granted := make(chan int, 8)
		wait := func(n int) { // acquire for source n in the background
			go func() {
				if _, err := s.acquire(ctx, src(n)); err != nil {
					t.Errorf("source %d: %v", n, err)
					return
				}
				granted <- n
			}()
			synctest.Wait()
		}
		grants := func() (got []int) {
			for {
				select {
				case n := <-granted:
					got = append(got, n)
				default:
					slices.Sort(got)
					return got
				}
			}
		}

		wait(1)
		wait(2)
		wait(3)
		if got := grants(); !slices.Equal(got, []int{1}) {
			t.Fatalf("not busy: granted %v, want [1] (one slot)", got)
		}
		setBusy(true)
		s.release(src(1), time.Now())
		synctest.Wait()
		if got := grants(); !slices.Equal(got, []int{2, 3}) {
			t.Fatalf("busy, after a release: granted %v, want [2 3]", got)
		}
		wait(4)
		if got := grants(); !slices.Equal(got, []int{4}) {
			t.Fatalf("busy, 2 of 3 running: granted %v, want [4] at once", got)
		}
		setBusy(false) // the calls ended: back to one at a time
		wait(5)
		for _, n := range []int{2, 3} {
			s.release(src(n), time.Now())
			synctest.Wait()
			if got := grants(); len(got) != 0 {
				t.Fatalf("not busy, %d still running: granted %v, want none", 4-n, got)
			}
		}
		s.release(src(4), time.Now())
		synctest.Wait()
		if got := grants(); !slices.Equal(got, []int{5}) {
			t.Fatalf("not busy, none running: granted %v, want [5]", got)
		}
		if inFlight, waiting, _ := s.stats(); inFlight != 1 || waiting != 0 {
			t.Errorf("stats: %d in flight, %d waiting; want 1, 0", inFlight, waiting)
		}
		s.release(src(5), time.Now())
	})
}
