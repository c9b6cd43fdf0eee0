package accounts

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowerThreadPriority locks the calling goroutine to its OS thread and puts
// that thread in the SCHED_IDLE class: it runs only on CPU time no normal
// thread wants (nice 19 where SCHED_IDLE is refused). Lowering one's own
// priority needs no privilege; raising it back would, so the goroutine
// stays locked and the thread never serves another goroutine.
func lowerThreadPriority() {
	runtime.LockOSThread()
	tid := unix.Gettid()
	if unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}, 0) != nil {
		unix.Setpriority(unix.PRIO_PROCESS, tid, 19) // best effort: on failure checks run at normal priority
	}
}
