package accounts

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"
)

// niceOf is the nice value of the calling thread. The raw getpriority
// system call returns 20 - nice.
func niceOf(t *testing.T) int {
	raw, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	return 20 - raw
}

// Checks run at nice 19, and the caller's thread keeps its priority.
func TestChecksRunAtLowestPriority(t *testing.T) {
	s := cheapStore(t, 1)
	var during int
	s.verify = func(h Hash, password string) bool {
		during = niceOf(t)
		return h.Verify(password)
	}
	before := niceOf(t)
	if before == 19 {
		t.Log("the test itself runs at nice 19, so this proves little; run it at a normal priority")
	}
	if err := s.Authenticate(context.Background(), "alice", "alicepw"); err != nil {
		t.Fatal(err)
	}
	if during != 19 {
		t.Errorf("the check ran at nice %d, want 19", during)
	}
	if after := niceOf(t); after != before {
		t.Errorf("the caller's nice changed from %d to %d", before, after)
	}
}
