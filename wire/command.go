package wire

import (
	"errors"
	"fmt"
	"log/slog"
)

// Verb is a command's name.
type Verb uint8

// The commands of PROTOCOL.md section 2.
const (
	Login Verb = iota + 1
	Lookup
	Call
	Accept
	Reject
	End
	Timeout
)

var verbNames = [...]string{
	Login:   "login",
	Lookup:  "lookup",
	Call:    "call",
	Accept:  "accept",
	Reject:  "reject",
	End:     "end",
	Timeout: "timeout",
}

func (v Verb) String() string {
	if int(v) < len(verbNames) && verbNames[v] != "" {
		return verbNames[v]
	}
	return fmt.Sprintf("verb(%d)", v)
}

func parseVerb(f []byte) (Verb, bool) {
	for v, name := range verbNames {
		if name != "" && string(f) == name {
			return Verb(v), true
		}
	}
	return 0, false
}

// Command is one parsed client command.
type Command struct {
	Time    int64     // client clock, Unix seconds
	Verb    Verb      // what to do
	Arg     string    // the user name the command is about
	Session SessionID // the sender's session; zero for Login
	// Password is set for Login only. It must never be logged: Command's
	// LogValue leaves it out.
	Password string
}

// LogValue describes c for logs without its password.
func (c Command) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("verb", c.Verb.String()),
		slog.String("arg", c.Arg),
	)
}

// Errors returned by ParseCommand. Every one of them is answered with
// InvalidReply; they differ only for logs and tests.
var (
	ErrTooLong   = errors.New("message too long")
	ErrFields    = errors.New("not four '|'-separated fields")
	ErrTimestamp = errors.New("bad timestamp")
	ErrVerb      = errors.New("unknown command")
	ErrEmpty     = errors.New("empty field")
	ErrSession   = errors.New("bad session id")
)

// ParseCommand parses one command message (one TLS record, or one line
// without its "\n"). It is strict: exactly four fields, none empty, digits
// only in numbers. Leading 'D's of the timestamp (stray keepalives) are
// skipped. The returned Command does not alias msg.
func ParseCommand(msg []byte) (Command, error) {
	if len(msg) > MaxCommand {
		return Command{}, ErrTooLong
	}
	var f [4][]byte
	if !split(msg, f[:]) {
		return Command{}, ErrFields
	}
	ts, ok := parseTimestamp(f[0])
	if !ok {
		return Command{}, ErrTimestamp
	}
	verb, ok := parseVerb(f[1])
	if !ok {
		return Command{}, ErrVerb
	}
	if len(f[2]) == 0 || len(f[3]) == 0 {
		return Command{}, ErrEmpty
	}
	c := Command{Time: ts, Verb: verb, Arg: string(f[2])}
	if verb == Login {
		c.Password = string(f[3])
		return c, nil
	}
	if c.Session, ok = parseSessionID(f[3]); !ok {
		return Command{}, ErrSession
	}
	return c, nil
}
