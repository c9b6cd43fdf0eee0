package accounts

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"
)

// threadPriority is the scheduling policy and nice value of the calling
// thread.
func threadPriority(t *testing.T) (policy uint32, nice int) {
	attr, err := unix.SchedGetAttr(unix.Gettid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return attr.Policy, int(attr.Nice)
}

// Checks run in the SCHED_IDLE class (or, where that is refused, at nice
// 19), and the caller's thread keeps its priority.
func TestChecksRunAtLowestPriority(t *testing.T) {
	s := cheapStore(t, 1)
	var policy uint32
	var nice int
	s.verify = func(h Hash, password string) bool {
		policy, nice = threadPriority(t)
		return h.Verify(password)
	}
	beforePolicy, beforeNice := threadPriority(t)
	if beforePolicy == unix.SCHED_IDLE {
		t.Log("the test itself runs in SCHED_IDLE, so this proves little")
	}
	if err := s.Authenticate(context.Background(), "alice", "alicepw"); err != nil {
		t.Fatal(err)
	}
	if policy != unix.SCHED_IDLE && nice != 19 {
		t.Errorf("the check ran with policy %d at nice %d, want SCHED_IDLE (%d) or nice 19", policy, nice, unix.SCHED_IDLE)
	}
	if p, n := threadPriority(t); p != beforePolicy || n != beforeNice {
		t.Errorf("the caller's thread changed from policy %d nice %d to %d, %d", beforePolicy, beforeNice, p, n)
	}
}
