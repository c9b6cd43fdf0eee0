package accounts

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowerThreadPriority moves the calling goroutine onto an OS thread of its
// own and puts that thread in the SCHED_IDLE class: it runs only on CPU
// time no normal thread wants (nice 19 where SCHED_IDLE is refused). The
// goroutine must end without unlocking: the runtime then discards the
// thread, so its priority never reaches other goroutines. Linux sets
// these per thread; lowering one's own priority needs no privilege.
func lowerThreadPriority() {
	runtime.LockOSThread()
	tid := unix.Gettid()
	if unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}, 0) != nil {
		unix.Setpriority(unix.PRIO_PROCESS, tid, 19) // best effort: on failure the check runs at normal priority
	}
}
