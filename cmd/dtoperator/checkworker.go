package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/dtcall/dtcall/accounts"
)

// checkWorkerArg is the hidden first argument that makes dtoperator a
// password check worker (accounts.ServeWorker): the server re-executes
// itself with it, and sends hashes and passwords over the child's stdin,
// never its arguments or environment.
const checkWorkerArg = "__check-worker"

// runCheckWorker is the worker's whole program; it returns the exit status.
// It ends when its stdin does: the server closed it or died.
func runCheckWorker() int {
	signal.Ignore(os.Interrupt, syscall.SIGHUP) // a terminal's ^C is for the server, which ends us
	if err := accounts.ServeWorker(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dtoperator: password check worker:", err)
		return 1
	}
	return 0
}

// newCheckWorker returns the Worker that checks costly hashes while calls
// are in progress, at the lowest CPU priority in a child running this
// executable, or nil (logged) when the executable cannot be found.
// timeout is WorkerConfig.Timeout; 0 means its default.
func newCheckWorker(log *slog.Logger, timeout time.Duration) *accounts.Worker {
	exe, err := os.Executable()
	if err != nil {
		log.Warn("no password check worker; costly checks run at normal priority: "+err.Error(), attrTag, "login", attrDir, "system")
		return nil
	}
	return accounts.NewWorker(accounts.WorkerConfig{
		Command: func() *exec.Cmd { return checkWorkerCommand(exe) },
		Timeout: timeout,
		// At idle priority a check takes only what calls leave over, so
		// every core may run one: ten p=16 logins at once then finish in
		// half the time on two cores (BENCHMARKS.md). Each child keeps
		// its check's 16 MiB heap, hence no more than four.
		Children: min(runtime.GOMAXPROCS(0), maxCheckWorkers),
	}, log)
}

// maxCheckWorkers bounds the check worker's children.
const maxCheckWorkers = 4

// checkWorkerCommand returns the command that runs exe as a check worker:
// no password in its arguments, and an empty environment.
func checkWorkerCommand(exe string) *exec.Cmd {
	cmd := exec.Command(exe, checkWorkerArg)
	cmd.Env = []string{}
	cmd.Stderr = os.Stderr
	return cmd
}
