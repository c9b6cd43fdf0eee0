// Package accounts reads the users file and checks passwords against its
// libscrypt hashes.
//
// The users file is parsed by [ParseUsers] or [LoadFile] into [Entry]
// values, each carrying a parsed [Hash]. A [Store] holds the accounts and
// runs password checks under a concurrency cap, so that a burst of logins
// (each costing up to a second of CPU) cannot starve the goroutines that
// relay signalling and media for calls already in progress.
//
// Passwords never appear in an error or a log line from this package.
package accounts
