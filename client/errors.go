package client

import (
	"errors"
	"fmt"
	"time"
)

// ErrRefused matches every *RefusedError: the server answered a command
// with ts|resp|invalid|command.
var ErrRefused = errors.New("refused by the server")

// ErrClosed is returned for work on a closed Client or Media.
var ErrClosed = errors.New("closed")

// ErrTimeout is returned when the server does not answer a request within
// Options.Timeout.
var ErrTimeout = errors.New("no answer from the server in time")

// ErrNotLoggedIn is returned by methods that need a session before Login
// succeeded.
var ErrNotLoggedIn = errors.New("not logged in")

// ErrNotQUIC is returned by Migrate over TCP.
var ErrNotQUIC = errors.New("only a QUIC client can migrate")

// RefusedError is the server's refusal (resp|invalid|command) of a
// command. errors.Is(err, ErrRefused) holds for it.
type RefusedError struct {
	Command string // "login", "lookup", "call", "accept", "reject", "end", "timeout"
	Peer    string // the command's argument (the user named), except for login
	// Skew is the local clock minus the server's, from the refusal's
	// server time (whole seconds). The server refuses commands whose
	// timestamp is more than its window (default 5 minutes) off.
	Skew time.Duration
}

func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

func (e *RefusedError) Error() string {
	var s string
	switch e.Command {
	case "login":
		s = "login refused: wrong user name or password, or a stale clock"
	case "call":
		s = "call refused: no media connection registered yet, or already ringing or in a call"
	case "accept", "reject":
		s = e.Command + " refused: no call from " + e.Peer + " is ringing"
	case "end":
		s = "end refused: no call with " + e.Peer
	case "timeout":
		s = "timeout refused: no call to " + e.Peer + " is ringing"
	default:
		s = e.Command + " refused by the server"
	}
	if e.Skew >= time.Minute || e.Skew <= -time.Minute {
		s += fmt.Sprintf(" (this computer's clock is %v off the server's)", e.Skew)
	}
	return s
}
