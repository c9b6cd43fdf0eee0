package accounts

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowerThreadPriority moves the calling goroutine onto an OS thread of its
// own and gives that thread the lowest CPU priority (nice 19). The
// goroutine must end without unlocking: the runtime then discards the
// thread, so its priority never reaches other goroutines. Linux nice
// values are per thread; lowering one's own priority needs no privilege.
func lowerThreadPriority() {
	runtime.LockOSThread()
	unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19) // best effort: on failure the check runs at normal priority
}
