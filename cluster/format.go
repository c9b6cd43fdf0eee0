package cluster

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/wire"
)

// Subjects and names on the NATS side. A node id is a single subject token
// ([A-Za-z0-9_-], see validID), so it can sit inside a subject as is.
//
//	dtcall.hb.<id>           heartbeats (empty payload) and departures
//	                         (payload "bye"); one subject and one
//	                         subscription, so a bye never overtakes the
//	                         node's last heartbeat
//	dtcall.sig.<id>          signals for node id (payload: signal message below)
//	dtcall.media.<id>.<sid>  a media frame for session sid of node id
//	                         (payload: the frame, nothing else)
//
// Media carries the session in the subject rather than in a header of the
// payload: the payload is then the frame itself (no copy into a larger
// buffer on send, none on receive), and one wildcard subscription
// (dtcall.media.<id>.*) still receives every session's frames in one place.
const (
	bucketName    = "dtcall_presence"
	hbPrefix      = "dtcall.hb."
	sigPrefix     = "dtcall.sig."
	mediaPrefix   = "dtcall.media."
	fromPrefix    = "dtcall.mfrom." // frames a client sent, for its session's node
	byePayload    = "bye"
	lostPayload   = "lost " // + a node id: the sender had lost that node, which is heard again
	maxIDLen      = 64
	maxNameLen    = maxIDLen - 7 // room for "-" and 6 hex digits
	maxSigField   = 1024         // longest user name or notice in a signal
	presenceMagic = "1"          // version of the presence value
)

var (
	errBadPresence = errors.New("cluster: malformed presence entry")
	errBadSignal   = errors.New("cluster: malformed signal")
)

// validID reports whether id can be a node id: 1 to 64 of [A-Za-z0-9_-].
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !idByte(id[i]) {
			return false
		}
	}
	return true
}

func idByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// sanitizeName maps a configured node name onto id bytes: every other byte
// becomes '_', and the result is cut to leave room for the random suffix.
func sanitizeName(name string) string {
	b := []byte(name)
	if len(b) > maxNameLen {
		b = b[:maxNameLen]
	}
	for i, c := range b {
		if !idByte(c) {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "node"
	}
	return string(b)
}

// userKey is the bucket key of user: "u" and the user name in unpadded
// base64url, so any name (dots, spaces, '*', '>', UTF-8) makes a valid key.
func userKey(user string) string {
	return "u" + base64.RawURLEncoding.EncodeToString([]byte(user))
}

// keyUser reverses userKey.
func keyUser(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "u")
	if !ok {
		return "", false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// presence is the value of a user's key: the node and the session there.
//
// Layout (text, so `nats kv get` shows it): "1 <node id> <session id>",
// the session in decimal without leading zeros, single spaces.
type presence struct {
	Node    string
	Session wire.SessionID
}

func encodePresence(p presence) []byte {
	b := make([]byte, 0, len(presenceMagic)+len(p.Node)+22)
	b = append(b, presenceMagic...)
	b = append(b, ' ')
	b = append(b, p.Node...)
	b = append(b, ' ')
	return strconv.AppendUint(b, uint64(p.Session), 10)
}

// decodePresence parses a value read from the bucket. It accepts only
// what encodePresence writes for a valid id and a session in 1..MaxSessionID.
func decodePresence(b []byte) (presence, error) {
	f := strings.Split(string(b), " ")
	if len(f) != 3 || f[0] != presenceMagic || !validID(f[1]) {
		return presence{}, errBadPresence
	}
	sid, ok := parseSession(f[2])
	if !ok {
		return presence{}, errBadPresence
	}
	return presence{Node: f[1], Session: sid}, nil
}

// parseSession parses a canonical decimal session id in 1..MaxSessionID.
func parseSession(s string) (wire.SessionID, bool) {
	if s == "" || s[0] == '0' || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > uint64(wire.MaxSessionID) {
		return 0, false
	}
	return wire.SessionID(v), true
}

// A signal message (the payload on dtcall.sig.<id>), big-endian:
//
//	0      version (1)
//	1      kind (core.SignalKind, valid)
//	2:10   call
//	10:18  from session
//	18:26  to session
//	26:    four strings, each a 2-byte length then its bytes: the sender's
//	       node id (valid id), FromUser, ToUser, Notice (each at most
//	       maxSigField bytes)
//
// Nothing may follow. The format is canonical: a message that decodes
// encodes back to the same bytes.
const (
	sigVersion   = 1
	sigFixedSize = 26
)

func encodeSignal(from string, s core.Signal) []byte {
	b := make([]byte, sigFixedSize, sigFixedSize+8+len(from)+len(s.FromUser)+len(s.ToUser)+len(s.Notice))
	b[0] = sigVersion
	b[1] = byte(s.Kind)
	binary.BigEndian.PutUint64(b[2:], s.Call)
	binary.BigEndian.PutUint64(b[10:], uint64(s.From))
	binary.BigEndian.PutUint64(b[18:], uint64(s.To))
	for _, f := range [...]string{from, s.FromUser, s.ToUser, s.Notice} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

// validSignal reports whether encodeSignal(from, s) decodes back to s.
func validSignal(from string, s core.Signal) bool {
	return validID(from) && s.Kind.Valid() && len(s.FromUser) <= maxSigField &&
		len(s.ToUser) <= maxSigField && len(s.Notice) <= maxSigField
}

// decodeSignal parses a signal message from the network.
func decodeSignal(b []byte) (from string, s core.Signal, err error) {
	if len(b) < sigFixedSize || b[0] != sigVersion {
		return "", core.Signal{}, errBadSignal
	}
	s.Kind = core.SignalKind(b[1])
	if !s.Kind.Valid() {
		return "", core.Signal{}, errBadSignal
	}
	s.Call = binary.BigEndian.Uint64(b[2:])
	s.From = wire.SessionID(binary.BigEndian.Uint64(b[10:]))
	s.To = wire.SessionID(binary.BigEndian.Uint64(b[18:]))
	rest := b[sigFixedSize:]
	var f [4]string
	for i := range f {
		if len(rest) < 2 {
			return "", core.Signal{}, errBadSignal
		}
		n := int(binary.BigEndian.Uint16(rest))
		if n > maxSigField || len(rest)-2 < n {
			return "", core.Signal{}, errBadSignal
		}
		f[i] = string(rest[2 : 2+n])
		rest = rest[2+n:]
	}
	if len(rest) != 0 || !validID(f[0]) {
		return "", core.Signal{}, errBadSignal
	}
	s.FromUser, s.ToUser, s.Notice = f[1], f[2], f[3]
	return f[0], s, nil
}

// parseMediaSubject returns the session of a media subject that starts
// with prefix ("dtcall.media.<id>.").
func parseMediaSubject(subject, prefix string) (wire.SessionID, bool) {
	rest, ok := strings.CutPrefix(subject, prefix)
	if !ok {
		return 0, false
	}
	return parseSession(rest)
}
