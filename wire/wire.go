// Package wire holds the byte layout of the dtoperator protocol: the command
// messages clients send, the replies the server writes, and the registration
// that binds a media channel to a session. It does no I/O.
//
// A command is four fields separated by '|':
//
//	timestamp|command|arg|sessionid      e.g. 1764168000|call|zapper|6144737382751829473
//	timestamp|login|username|password    e.g. 1764168000|login|zapper|railgun
//
// A reply or notification is four fields too:
//
//	servertime|kind|sub|value            e.g. 1764168000|ring|available|zapper
//
// The refusal reply is the only message with a terminator:
//
//	servertime|resp|invalid|command\n
//
// A media registration is two fields (legacy and QUIC stream mode) or three
// (QUIC datagram mode):
//
//	timestamp|sessionid
//	timestamp|sessionid|datagram
//
// On the legacy front a message is one TLS record; on QUIC it is one line.
package wire

import (
	"bytes"
	"strconv"
)

// MaxCommand is the longest command a client may send, in bytes.
const MaxCommand = 1024

// Keepalive is the "jbyte": a message consisting of this single byte may
// arrive on any connection at any time and is ignored.
const Keepalive = 'D'

// SessionID identifies a logged-in session. Clients parse it as a Java long,
// so valid ids are 1..2^63-1.
type SessionID uint64

// MaxSessionID is the largest valid session id (2^63-1).
const MaxSessionID SessionID = 1<<63 - 1

func (id SessionID) String() string { return strconv.FormatUint(uint64(id), 10) }

// IsKeepalive reports whether msg is a keepalive: one or more 'D' bytes and
// nothing else. (A lone "D" is what clients send; a run of them is treated the
// same, since a command can never consist of 'D's only.)
func IsKeepalive(msg []byte) bool {
	if len(msg) == 0 {
		return false
	}
	for _, b := range msg {
		if b != Keepalive {
			return false
		}
	}
	return true
}

// split cuts msg at each '|' into exactly n fields and reports whether it had
// exactly n. It allocates nothing.
func split(msg []byte, fields [][]byte) bool {
	for i := range len(fields) - 1 {
		j := bytes.IndexByte(msg, '|')
		if j < 0 {
			return false
		}
		fields[i], msg = msg[:j], msg[j+1:]
	}
	if bytes.IndexByte(msg, '|') >= 0 {
		return false
	}
	fields[len(fields)-1] = msg
	return true
}

// parseTimestamp parses the first field of a command or registration: stray
// leading 'D's (old Java clients) are stripped, then it must be a plain
// decimal number of Unix seconds.
func parseTimestamp(f []byte) (int64, bool) {
	f = bytes.TrimLeft(f, "D")
	n, ok := parseDecimal(f)
	if !ok || n > 1<<62 {
		return 0, false
	}
	return int64(n), true
}

// parseSessionID parses a decimal session id in 1..2^63-1.
func parseSessionID(f []byte) (SessionID, bool) {
	n, ok := parseDecimal(f)
	if !ok || n == 0 || n > uint64(MaxSessionID) {
		return 0, false
	}
	return SessionID(n), true
}

// parseDecimal accepts 1..19 ASCII digits and nothing else: no sign, no
// space, no trailing garbage.
func parseDecimal(f []byte) (uint64, bool) {
	if len(f) == 0 || len(f) > 19 {
		return 0, false
	}
	var n uint64
	for _, b := range f {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + uint64(b-'0')
	}
	return n, true
}
