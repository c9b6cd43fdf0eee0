package accounts

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// policies returns the scheduling policy of each thread of process pid
// (field 41 of /proc/PID/task/TID/stat).
func policies(t *testing.T, pid int) []int {
	t.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	var out []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fields := bytes.Fields(b[bytes.LastIndexByte(b, ')')+2:]) // from field 3, the state
		p, err := strconv.Atoi(string(fields[41-3]))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, p)
	}
	return out
}

// The child checks in a SCHED_IDLE thread; the server's threads keep
// their priority.
func TestWorkerChecksAtIdlePriority(t *testing.T) {
	t.Parallel()
	w, _ := testWorker(t, "serve", WorkerConfig{})
	s := busyStore(t, w)
	if err := s.Authenticate(context.Background(), src, "carol", "carolpw"); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	pid := w.idle[0].cmd.Process.Pid
	w.mu.Unlock()
	idle := 0
	for _, p := range policies(t, pid) {
		if p == unix.SCHED_IDLE {
			idle++
		}
	}
	if idle != 1 {
		t.Errorf("child threads' policies %v: want one SCHED_IDLE (%d)", policies(t, pid), unix.SCHED_IDLE)
	}
	for _, p := range policies(t, os.Getpid()) {
		if p == unix.SCHED_IDLE {
			t.Errorf("a thread of the server is SCHED_IDLE: %v", policies(t, os.Getpid()))
			break
		}
	}
}
