//go:build !linux

package accounts

// lowerThreadPriority does nothing outside Linux, where a thread's
// priority cannot be set on its own: checks run at normal priority.
func lowerThreadPriority() {}
