package main

import (
	"context"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dtcall/dtcall/accounts"
)

// The server's check worker is this executable in its hidden mode: costly
// checks while calls are in progress go to it, with the same results, and
// the password is in neither its arguments nor its environment.
func TestCheckWorker(t *testing.T) {
	t.Parallel()
	cmd := checkWorkerCommand("/usr/bin/dtoperator")
	if !slices.Equal(cmd.Args, []string{"/usr/bin/dtoperator", checkWorkerArg}) || cmd.Env == nil || len(cmd.Env) != 0 {
		t.Errorf("worker command %q, environment %q: want no arguments but the mode and an empty environment", cmd.Args, cmd.Env)
	}

	w := newCheckWorker(slog.New(slog.DiscardHandler), time.Minute) // not starved into a fallback by other tests' load
	if w == nil {
		t.Fatal("no worker")
	}
	defer w.Close()
	if want := min(runtime.GOMAXPROCS(0), maxCheckWorkers); w.Children() != want {
		t.Errorf("the worker runs %d checks at once, want %d: one per core, at most %d", w.Children(), want, maxCheckWorkers)
	}
	p := accounts.Params{LogN: 3, R: 255, P: 255} // costly, yet 0.2 s
	if !p.Costly() {
		t.Fatalf("%+v is not costly", p)
	}
	h, err := accounts.NewHash("oldpw", p)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := accounts.ParseUsers(strings.NewReader("old " + h + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := accounts.NewStore(entries, 1)
	s.SetWorker(func() bool { return true }, w)
	src := netip.MustParseAddr("192.0.2.1")
	if err := s.Authenticate(context.Background(), src, "old", "oldpw"); err != nil {
		t.Errorf("right password: %v", err)
	}
	if err := s.Authenticate(context.Background(), src, "old", "wrong"); err != accounts.ErrBadCredentials {
		t.Errorf("wrong password: %v", err)
	}
	if st := s.Stats(); st.InWorker != 2 || st.Fallbacks != 0 {
		t.Errorf("%d checks in the worker, %d fallbacks; want 2 and 0", st.InWorker, st.Fallbacks)
	}
}
