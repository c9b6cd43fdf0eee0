// Package accounts reads the users file and checks passwords against its
// libscrypt hashes.
//
// The users file is parsed by [ParseUsers] or [LoadFile] into [Entry]
// values, each carrying a parsed [Hash]. A [Store] holds the accounts and
// runs password checks under a concurrency cap, so that a burst of logins
// (each costing up to a second of CPU) cannot starve the goroutines that
// relay signalling and media for calls already in progress. Checks wait
// in a queue that is bounded per source and in all ([Limits]) and served
// fairly across sources, so that a flood from a few addresses costs a
// legitimate login about one check. Costly checks (the old tool's p=16
// hashes) have a lane of their own, so cheap logins never wait behind
// them, and while calls are in progress they run in a [Worker], a child
// process at the lowest CPU priority. An unknown name costs what a wrong
// password for one of the file's accounts costs (see decoy.go), so timing
// does not enumerate users.
//
// Package autoban bans the sources of repeated failed logins.
//
// Passwords never appear in an error or a log line from this package.
package accounts
