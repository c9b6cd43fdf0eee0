package autoban

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newBans(cfg Config) (*Bans, *logBuffer) {
	var buf logBuffer
	return New(cfg, slog.New(slog.NewTextHandler(&buf, nil))), &buf
}

var (
	a = netip.MustParseAddr("192.0.2.2")
	b = netip.MustParseAddr("192.0.2.3")
)

func fail(bans *Bans, addr netip.Addr, n int) {
	for range n {
		bans.Failed(addr)
	}
}

// TestBanAndExpire: Attempts failures within Window ban the source, and
// only it, for Time; then it is allowed again with a clean slate.
func TestBanAndExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bans, logs := newBans(Config{Attempts: 10})
		fail(bans, a, 9)
		if !bans.Allow(a) {
			t.Fatal("banned after 9 failures")
		}
		bans.Failed(a)
		if bans.Allow(a) {
			t.Fatal("not banned after 10 failures within the window")
		}
		if !bans.Allow(b) {
			t.Fatal("another source is banned too")
		}
		if st := bans.Stats(); st.Active != 1 || st.Bans != 1 {
			t.Errorf("Stats() = %+v, want 1 active ban", st)
		}
		line := logs.String()
		if want := `msg="source banned" peer=192.0.2.2 `; strings.Count(line, "source banned") != 1 || !strings.Contains(line, want) {
			t.Errorf("log %q, want one line with %q", line, want)
		}
		time.Sleep(DefaultTime - time.Second)
		if bans.Allow(a) {
			t.Fatal("the ban lifted early")
		}
		time.Sleep(time.Second)
		if !bans.Allow(a) {
			t.Fatal("the ban did not lift after Time")
		}
		if st := bans.Stats(); st.Active != 0 {
			t.Errorf("Stats() = %+v after the ban, want none active", st)
		}
		fail(bans, a, 9)
		if !bans.Allow(a) {
			t.Error("banned again after 9 failures: the old ones still count")
		}
	})
}

// TestWindowSlides: failures spread wider than Window never ban.
func TestWindowSlides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bans, _ := newBans(Config{Attempts: 3, Window: time.Minute})
		for range 20 {
			bans.Failed(a)
			time.Sleep(30 * time.Second) // 2 per window
		}
		if !bans.Allow(a) {
			t.Fatal("banned for 2 failures per window")
		}
		bans.Failed(a)
		time.Sleep(29 * time.Second)
		bans.Failed(a) // 3 within 59 s
		if bans.Allow(a) {
			t.Fatal("not banned for 3 failures within the window")
		}
	})
}

func TestBanIgnoresFailuresWhileBanned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bans, logs := newBans(Config{Attempts: 2, Time: time.Minute})
		fail(bans, a, 10)
		if n := strings.Count(logs.String(), "source banned"); n != 1 {
			t.Errorf("%d ban lines, want 1", n)
		}
		time.Sleep(time.Minute) // not extended by the failures while banned
		if !bans.Allow(a) {
			t.Error("still banned after Time")
		}
	})
}

func TestOff(t *testing.T) {
	bans, logs := newBans(Config{Attempts: 0})
	fail(bans, a, 1000)
	if !bans.Allow(a) || bans.Enabled() || logs.String() != "" || bans.Stats() != (Stats{}) {
		t.Errorf("Attempts 0 bans: allow %v, stats %+v, log %q", bans.Allow(a), bans.Stats(), logs)
	}
}

func TestExempt(t *testing.T) {
	bans, _ := newBans(Config{Attempts: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/30"), netip.MustParsePrefix("2001:db8::/48")}})
	for _, s := range []string{"192.0.2.2", "::ffff:192.0.2.1", "2001:db8:0:5::1"} {
		addr := netip.MustParseAddr(s)
		fail(bans, addr, 5)
		if !bans.Allow(addr) {
			t.Errorf("exempt %s banned", s)
		}
	}
	bans.Failed(b) // 192.0.2.3 is in the /30 too
	if bans.Failed(netip.MustParseAddr("192.0.2.4")); bans.Allow(netip.MustParseAddr("192.0.2.4")) {
		t.Error("192.0.2.4, outside the exempt /30, not banned")
	}
}

// TestSources: IPv6 addresses count per /64, IPv4-mapped ones as IPv4.
func TestSources(t *testing.T) {
	bans, _ := newBans(Config{Attempts: 3})
	bans.Failed(netip.MustParseAddr("2001:db8::1"))
	bans.Failed(netip.MustParseAddr("2001:db8::2"))
	bans.Failed(netip.MustParseAddr("2001:db8::ffff:ffff:ffff:ffff%eth0"))
	if bans.Allow(netip.MustParseAddr("2001:db8::3")) {
		t.Error("3 failures from one /64 do not ban it")
	}
	if !bans.Allow(netip.MustParseAddr("2001:db8:0:1::1")) {
		t.Error("the next /64 is banned too")
	}
	bans.Failed(netip.MustParseAddr("::ffff:192.0.2.9"))
	bans.Failed(netip.MustParseAddr("192.0.2.9"))
	bans.Failed(netip.MustParseAddr("::ffff:192.0.2.9"))
	if bans.Allow(netip.MustParseAddr("192.0.2.9")) {
		t.Error("IPv4-mapped failures do not count for the IPv4 address")
	}
	for _, tt := range []struct{ addr, want string }{
		{"192.0.2.1", "192.0.2.1/32"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
	} {
		if got := Source(netip.MustParseAddr(tt.addr)).String(); got != tt.want {
			t.Errorf("Source(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
	if Source(netip.Addr{}) != (netip.Prefix{}) {
		t.Error("Source of the zero Addr")
	}
}

// TestBounded: at most MaxSources are remembered, old records are swept,
// and bans hold while the table is full.
func TestBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bans, _ := newBans(Config{Attempts: 2, Window: time.Minute, MaxSources: 100})
		fail(bans, a, 2)
		for i := range 1000 {
			bans.Failed(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
		}
		if st := bans.Stats(); st.Tracked != 100 || st.Active != 1 {
			t.Errorf("Stats() = %+v, want 100 tracked, 1 banned", st)
		}
		if bans.Allow(a) {
			t.Error("the ban was dropped to make room")
		}
		time.Sleep(time.Minute)
		bans.Failed(b) // sweeps
		if st := bans.Stats(); st.Tracked != 2 {
			t.Errorf("after a window: Stats() = %+v, want the ban and b", st)
		}
		time.Sleep(DefaultTime)
		bans.Failed(b)
		if st := bans.Stats(); st.Tracked != 1 || st.Active != 0 {
			t.Errorf("after the ban: Stats() = %+v, want b only", st)
		}
	})
}

func TestConcurrent(t *testing.T) {
	bans, logs := newBans(Config{Attempts: 50})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				bans.Failed(a)
				bans.Allow(a)
				bans.Stats()
			}
		})
	}
	wg.Wait()
	if bans.Allow(a) || strings.Count(logs.String(), "source banned") != 1 {
		t.Errorf("800 failures from 8 goroutines: allowed %v, log %q", bans.Allow(a), logs)
	}
}
