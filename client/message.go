package client

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// message is one server message, servertime|kind|sub|value, without the
// framing (the "\n" of a line, or the one "\n" the invalid reply carries).
type message struct {
	time             int64 // server clock, Unix seconds
	kind, sub, value string
}

// parseMessage splits a server message into its four fields. It reports
// false for anything else; clients drop such messages.
func parseMessage(b []byte) (message, bool) {
	s := strings.TrimSuffix(string(b), "\n")
	f := strings.Split(s, "|")
	if len(f) != 4 {
		return message{}, false
	}
	ts, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return message{}, false
	}
	return message{time: ts, kind: f[1], sub: f[2], value: f[3]}, true
}

func (m message) String() string {
	return fmt.Sprintf("%d|%s|%s|%s", m.time, m.kind, m.sub, m.value)
}

// invalid reports whether m is the refusal ts|resp|invalid|command.
func (m message) invalid() bool { return m.kind == "resp" && m.sub == "invalid" }

// isReply reports whether m answers a command of ours (as opposed to a
// notification about someone else's doing).
func (m message) isReply() bool {
	switch m.kind {
	case "resp", "lookup":
		return true
	case "ring":
		return m.sub == "available" || m.sub == "notavailable" || m.sub == "busy"
	}
	return false
}

// serverTime is m's time field as a time.
func (m message) serverTime() time.Time { return time.Unix(m.time, 0) }

// EventKind says what an Event tells.
type EventKind int

// Notifications, with the message each comes from.
const (
	// Incoming: Peer is calling you (ring|incoming|<caller>). Answer with
	// Accept or Reject.
	Incoming EventKind = iota + 1
	// Started: the call with Peer is up, media flows
	// (call|start|<peer>); both parties get it.
	Started
	// Rejected: Peer declined your call (call|reject|<callee>).
	Rejected
	// Ended: Peer hung up, cancelled the call while it rang, or left while
	// it rang (call|end|<peer>).
	Ended
	// TimedOut: the caller Peer gave up ringing (ring|timeout|<caller>).
	TimedOut
	// Dropped: the other party's connection died during the call
	// (call|drop|<your own session id>). Peer is the party the client knew
	// the call was with ("" if it missed the start).
	Dropped
)

var eventNames = map[EventKind]string{
	Incoming: "incoming", Started: "start", Rejected: "reject",
	Ended: "end", TimedOut: "timeout", Dropped: "drop",
}

func (k EventKind) String() string {
	if s, ok := eventNames[k]; ok {
		return s
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is a notification from the server.
type Event struct {
	Kind EventKind
	// Peer is the other user of the call the event is about.
	Peer string
	// Value is the message's last field as sent: the peer's name, or for
	// Dropped the receiver's own session id.
	Value string
	// ServerTime is the server's clock when it sent the event.
	ServerTime time.Time
}

func (e Event) String() string { return e.Kind.String() + " " + e.Peer }

// eventOf turns a notification into an Event; ok is false for messages
// that are neither a reply nor a known notification.
func eventOf(m message) (Event, bool) {
	var k EventKind
	switch m.kind + "|" + m.sub {
	case "ring|incoming":
		k = Incoming
	case "ring|timeout":
		k = TimedOut
	case "call|start":
		k = Started
	case "call|reject":
		k = Rejected
	case "call|end":
		k = Ended
	case "call|drop":
		k = Dropped
	default:
		return Event{}, false
	}
	return Event{Kind: k, Peer: m.value, Value: m.value, ServerTime: m.serverTime()}, true
}

// CallResult is the server's answer to Call.
type CallResult int

// Answers to a call (ring|available, ring|notavailable, ring|busy).
const (
	// Available: the callee is ringing; wait for Started, Rejected or
	// Ended, or give up with Timeout (clients do after about 20 s).
	Available CallResult = iota + 1
	// NotAvailable: the callee is unknown, offline, or has no media
	// connection.
	NotAvailable
	// Busy: the callee is ringing or in a call already, or is you.
	Busy
)

func (r CallResult) String() string {
	switch r {
	case Available:
		return "available"
	case NotAvailable:
		return "notavailable"
	case Busy:
		return "busy"
	}
	return fmt.Sprintf("CallResult(%d)", int(r))
}
