package accounts

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// workerEnv names the test child's behaviour when the test binary runs as
// a Worker's child (see TestMain).
const workerEnv = "ACCOUNTS_TEST_WORKER"

// runTestWorker is the test binary as a Worker's child, per mode; it
// returns the exit status.
func runTestWorker(mode string) int {
	switch mode {
	case "serve":
		if err := ServeWorker(os.Stdin, os.Stdout); err != nil {
			return 1
		}
	case "slow": // serves after 1 s, as a child on a loaded machine
		time.Sleep(time.Second)
		if err := ServeWorker(os.Stdin, os.Stdout); err != nil {
			return 1
		}
	case "exit": // dies before reading anything
		return 3
	case "die": // dies once it has the request
		var b [4]byte
		io.ReadFull(os.Stdin, b[:])
		return 3
	case "hang": // reads, never answers
		io.Copy(io.Discard, os.Stdin)
	case "garble": // answers nonsense
		var b [4]byte
		io.ReadFull(os.Stdin, b[:])
		os.Stdout.Write([]byte{7})
		io.Copy(io.Discard, os.Stdin)
	}
	return 0
}

// testWorker returns a Worker whose child is this test binary in mode
// (runTestWorker), closed at the end of the test, and a count of children
// started.
func testWorker(t *testing.T, mode string, cfg WorkerConfig) (*Worker, *atomic.Int32) {
	t.Helper()
	var starts atomic.Int32
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Minute // other packages' tests may load the CPU: not starved into a fallback
	}
	cfg.Command = func() *exec.Cmd {
		starts.Add(1)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"="+mode)
		return cmd
	}
	w := NewWorker(cfg, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { w.Close() })
	return w, &starts
}

// busyStore is workerStore with calls in progress all along.
func busyStore(t *testing.T, w *Worker) *Store {
	t.Helper()
	var busy atomic.Bool
	busy.Store(true)
	return workerStore(t, w, &busy)
}

// workerStore returns a Store with alice (cheap) and carol (costly to the
// Store, though her hash is as cheap as alice's), checked in w while busy
// is true.
func workerStore(t *testing.T, w *Worker, busy *atomic.Bool) *Store {
	t.Helper()
	h, err := NewHash("carolpw", Params{LogN: 5, R: 1, P: 1})
	if err != nil {
		t.Fatal(err)
	}
	in := "alice " + mustHash(t, "alicepw") + "\ncarol " + h + "\n"
	entries, err := ParseUsers(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(entries, 1)
	s.costly = func(p Params) bool { return p.LogN == 5 }
	s.SetWorker(busy.Load, w)
	return s
}

func TestCostly(t *testing.T) {
	for _, tc := range []struct {
		p    Params
		want bool
	}{
		{Params{LogN: 14, R: 8, P: 16}, true}, // the old tool's
		{DefaultParams, false},
		{Params{LogN: 16, R: 8, P: 1}, true},
		{Params{LogN: 4, R: 8, P: 1}, false}, // dtload's
		{Params{LogN: 3, R: 255, P: 255}, true},
		{Params{LogN: 40, R: 8, P: 1}, false}, // unusable: Verify refuses it at once
	} {
		if got := tc.p.Costly(); got != tc.want {
			t.Errorf("%+v.Costly() = %v, want %v", tc.p, got, tc.want)
		}
	}
}

// Checks go to the Worker only while busy and only when costly; the
// results are the same either way.
func TestWorkerSwitches(t *testing.T) {
	t.Parallel()
	w, starts := testWorker(t, "serve", WorkerConfig{})
	var busy atomic.Bool
	s := workerStore(t, w, &busy)
	ctx := context.Background()
	for _, step := range []struct {
		busy      bool
		name, pw  string
		wantErr   error
		wantInWkr uint64
	}{
		{false, "carol", "carolpw", nil, 0},
		{true, "carol", "carolpw", nil, 1},
		{true, "carol", "wrong", ErrBadCredentials, 2},
		{true, "alice", "alicepw", nil, 2}, // cheap: never in the worker
		{false, "carol", "wrong", ErrBadCredentials, 2},
		{true, "carol", "carolpw", nil, 3},
	} {
		busy.Store(step.busy)
		if err := s.Authenticate(ctx, src, step.name, step.pw); !errors.Is(err, step.wantErr) {
			t.Errorf("busy %v: Authenticate(%s, %s) = %v, want %v", step.busy, step.name, step.pw, err, step.wantErr)
		}
		if st := s.Stats(); st.InWorker != step.wantInWkr || st.Fallbacks != 0 {
			t.Errorf("busy %v, %s: %d in the worker and %d fallbacks, want %d and 0", step.busy, step.name, st.InWorker, st.Fallbacks, step.wantInWkr)
		}
	}
	if n := starts.Load(); n != 1 {
		t.Errorf("%d children started, want 1", n)
	}
}

// An unknown name whose decoy is costly goes to the Worker too, as the
// real accounts it stands for do.
func TestWorkerDecoy(t *testing.T) {
	t.Parallel()
	w, _ := testWorker(t, "serve", WorkerConfig{})
	s := busyStore(t, w)
	s.costly = func(Params) bool { return true }
	if err := s.Authenticate(context.Background(), src, "nobody", "x"); err != ErrBadCredentials {
		t.Fatalf("unknown name: %v", err)
	}
	if st := s.Stats(); st.InWorker != 1 {
		t.Errorf("%d checks in the worker, want 1", st.InWorker)
	}
}

// A Worker that fails a check leaves the result as it would have been: the
// Store checks the password itself, at once, and the next check after
// Retry starts a new child; a starved child ("hang": no reply within
// Timeout) is replaced at the next check.
func TestWorkerFailures(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"exit", "die", "hang", "garble", "no such binary"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			w, starts := testWorker(t, mode, WorkerConfig{Timeout: 300 * time.Millisecond, Retry: time.Hour})
			if mode == "no such binary" {
				w.cfg.Command = func() *exec.Cmd { starts.Add(1); return exec.Command("/nonexistent/dtoperator") }
			}
			s := busyStore(t, w)
			for i, pw := range []string{"carolpw", "wrong", "carolpw"} {
				want := error(nil)
				if pw == "wrong" {
					want = ErrBadCredentials
				}
				start := time.Now()
				if err := s.Authenticate(context.Background(), src, "carol", pw); err != want {
					t.Errorf("check %d: %v, want %v", i, err, want)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("check %d took %v", i, d)
				}
			}
			if st := s.Stats(); st.InWorker != 0 || st.Fallbacks != 3 {
				t.Errorf("%d in the worker and %d fallbacks, want 0 and 3", st.InWorker, st.Fallbacks)
			}
			want := int32(1) // Retry holds the rest back
			if mode == "hang" {
				want = 3 // starved, not failed: the next check tries a new child
			}
			if n := starts.Load(); n != want {
				t.Errorf("%d children started, want %d", n, want)
			}
		})
	}
}

// After Retry a failed Worker starts a new child, which then serves.
func TestWorkerRestarts(t *testing.T) {
	t.Parallel()
	w, starts := testWorker(t, "serve", WorkerConfig{Retry: time.Millisecond})
	s := busyStore(t, w)
	ctx := context.Background()
	if err := s.Authenticate(ctx, src, "carol", "carolpw"); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.idle[0].cmd.Process.Kill() // dies between checks
	w.mu.Unlock()
	for range 2 {
		if err := s.Authenticate(ctx, src, "carol", "carolpw"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	st := s.Stats()
	if st.Fallbacks != 1 || st.InWorker != 2 || starts.Load() != 2 {
		t.Errorf("%d fallbacks, %d in the worker, %d children; want 1, 2, 2", st.Fallbacks, st.InWorker, starts.Load())
	}
}

// carolAtOnce logs carol in n times at once and waits for every login,
// each of which must succeed.
func carolAtOnce(t *testing.T, s *Store, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := s.Authenticate(context.Background(), src, "carol", "carolpw"); err != nil {
				t.Errorf("check %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}

// With Children 2, two costly checks run at once, each in a child of its
// own, and no more children start than that however many checks arrive;
// the children are kept for the checks after.
func TestWorkerChildren(t *testing.T) {
	t.Parallel()
	w, starts := testWorker(t, "slow", WorkerConfig{Children: 2})
	s := busyStore(t, w) // maxConcurrent 1: the Worker's Children lift the costly lane to 2
	carolAtOnce(t, s, 6)
	if n := starts.Load(); n != 2 {
		t.Errorf("%d children started for 6 checks at once, want 2", n)
	}
	if st := s.Stats(); st.InWorker != 6 || st.Fallbacks != 0 || st.Limit != 1 {
		t.Errorf("%d in the worker, %d fallbacks, Limit %d; want 6, 0, 1", st.InWorker, st.Fallbacks, st.Limit)
	}
}

// Costly checks that fall back to the server run at most maxConcurrent
// at once even while calls widen the lane to the Worker's Children: at
// normal priority they would take every core.
func TestCostlyChecksHereStayBounded(t *testing.T) {
	t.Parallel()
	w, _ := testWorker(t, "exit", WorkerConfig{Children: 3, Retry: time.Hour}) // every check falls back
	s := busyStore(t, w)
	var running, peak atomic.Int32
	verify := s.verify
	s.verify = func(h Hash, pw string) bool {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(200 * time.Millisecond) // long enough that, unbounded, all 3 would overlap
		running.Add(-1)
		return verify(h, pw)
	}
	carolAtOnce(t, s, 3) // the Worker fails them at once, so all 3 hold a slot together
	if p := peak.Load(); p != 1 {
		t.Errorf("%d costly checks at once in the server, want 1 (maxConcurrent)", p)
	}
	if st := s.Stats(); st.Fallbacks != 3 {
		t.Errorf("%d fallbacks, want 3", st.Fallbacks)
	}
}

// Close ends a check in progress (checked in the server instead) and
// the checks after it never start a child.
func TestWorkerClose(t *testing.T) {
	t.Parallel()
	w, starts := testWorker(t, "hang", WorkerConfig{})
	s := busyStore(t, w)
	done := make(chan error)
	go func() { done <- s.Authenticate(context.Background(), src, "carol", "carolpw") }()
	for starts.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the request reach the child
	w.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("check during Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a check in progress did not end with Close")
	}
	if err := s.Authenticate(context.Background(), src, "carol", "carolpw"); err != nil {
		t.Errorf("check after Close: %v", err)
	}
	if st := s.Stats(); st.Fallbacks != 2 || starts.Load() != 1 {
		t.Errorf("%d fallbacks, %d children; want 2, 1", st.Fallbacks, starts.Load())
	}
}

// Close ends every check in progress, one per child, and leaves no child
// behind.
func TestWorkerCloseEndsEveryCheck(t *testing.T) {
	t.Parallel()
	w, starts := testWorker(t, "hang", WorkerConfig{Children: 3})
	s := busyStore(t, w)
	done := make(chan error, 3)
	for range 3 {
		go func() { done <- s.Authenticate(context.Background(), src, "carol", "carolpw") }()
	}
	for deadline := time.Now().Add(10 * time.Second); starts.Load() < 3 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the requests reach the children
	closed := make(chan struct{})
	go func() { w.Close(); close(closed) }()
	for i := range 3 {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("check %d during Close: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a check in progress did not end with Close")
		}
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if st := s.Stats(); st.Fallbacks != 3 || starts.Load() != 3 {
		t.Errorf("%d fallbacks, %d children; want 3, 3", st.Fallbacks, starts.Load())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.idle) != 0 {
		t.Errorf("%d children left after Close", len(w.idle))
	}
}

// Cheap logins finish in under a second while a costly check runs in the
// worker at idle priority and every CPU is saturated at normal priority,
// with more busy threads than CPUs, so that the costly check gets nothing.
// The checks of the first SCHED_IDLE design (reverted in b5071df) shared
// one slot and all ran at idle priority: there a cheap login waited behind
// the starved costly check, and failed this test.
func TestCheapLoginsDuringStarvedCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("saturates every CPU for a few seconds")
	}
	w, _ := testWorker(t, "serve", WorkerConfig{})
	var busy atomic.Bool
	busy.Store(true)
	// Really costly: the check has to be running while the cheap logins
	// go on (about 0.2 s of CPU at full speed, far longer here).
	h, err := NewHash("oldpw", Params{LogN: 3, R: 255, P: 255})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ParseUsers(strings.NewReader("alice " + mustHash(t, "alicepw") + "\nold " + h + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(entries, 1)
	s.SetWorker(busy.Load, w)

	procs := 2 * runtime.NumCPU()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	stop := make(chan struct{})
	var spin sync.WaitGroup
	for range procs {
		spin.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < 1e5; i++ {
				}
			}
		})
	}
	stopSpinning := sync.OnceFunc(func() { close(stop); spin.Wait() })
	defer stopSpinning()

	costly := make(chan error, 1)
	go func() { costly <- s.Authenticate(context.Background(), src, "old", "oldpw") }()
	for s.Stats().InFlight == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := range 5 {
		start := time.Now()
		if err := s.Authenticate(context.Background(), src, "alice", "alicepw"); err != nil {
			t.Fatalf("cheap login %d: %v", i, err)
		}
		if d := time.Since(start); d >= time.Second {
			t.Errorf("cheap login %d took %v while a costly check was starved, want < 1 s", i, d)
		}
	}
	select {
	case err := <-costly:
		t.Logf("the costly check ended before the cheap logins did (%v): they did not overlap it all", err)
	default:
	}
	stopSpinning() // the costly check gets the CPU
	if err := <-costly; err != nil {
		t.Errorf("costly login: %v", err)
	}
	if st := s.Stats(); st.InWorker+st.Fallbacks != 1 {
		t.Errorf("%d checks in the worker and %d fallbacks, want 1 in all", st.InWorker, st.Fallbacks)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	h, err := ParseMCF(mustHash(t, "pw"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"", "pw", "wrong", strings.Repeat("x", 1000)} {
		req := encodeRequest(h, pw)
		if n := binary.BigEndian.Uint32(req); int(n) != len(req)-4 {
			t.Fatalf("length %d for %d bytes", n, len(req)-4)
		}
		got, gotPW, err := decodeRequest(req[4:])
		if err != nil || got.String() != h.String() || string(gotPW) != pw {
			t.Errorf("decode(encode(%q)) = %v, %q, %v", pw, got, gotPW, err)
		}
	}
}

func TestServeWorker(t *testing.T) {
	h, err := ParseMCF(mustHash(t, "pw"))
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	in.Write(encodeRequest(h, "pw"))
	in.Write(encodeRequest(h, "wrong"))
	in.Write(encodeRequest(Hash{}, "pw")) // unusable: no match
	var out bytes.Buffer
	if err := serveWorker(&in, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.Bytes(); !bytes.Equal(got, []byte{1, 0, 0}) {
		t.Errorf("replies %v, want [1 0 0]", got)
	}

	for name, req := range map[string][]byte{
		"too long":   {0xff, 0xff, 0xff, 0xff},
		"cut short":  {0, 0, 0, 9, 1, 2},
		"no salt":    {0, 0, 0, 3, 4, 1, 1},
		"salt short": {0, 0, 0, 5, 4, 1, 1, 9, 1},
		"no key":     {0, 0, 0, 5, 4, 1, 1, 1, 0xaa},
	} {
		out.Reset()
		if err := serveWorker(bytes.NewReader(req), &out); err == nil || out.Len() != 0 {
			t.Errorf("%s: error %v, %d bytes out; want an error and none", name, err, out.Len())
		}
	}
}
