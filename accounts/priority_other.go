//go:build !linux

package accounts

// lowerThreadPriority does nothing here: a Worker's checks run at normal
// priority, in a process of their own.
func lowerThreadPriority() {}
