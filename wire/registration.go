package wire

import "errors"

// Registration binds a media channel to a session.
type Registration struct {
	Time    int64     // client clock, Unix seconds
	Session SessionID // the session the media channel belongs to
	// Datagram asks for QUIC datagram mode ("ts|sid|datagram"); the legacy
	// front refuses it.
	Datagram bool
}

// ErrRegistration is returned for a malformed registration message.
var ErrRegistration = errors.New("malformed media registration")

// ParseRegistration parses "ts|sessionid" or "ts|sessionid|datagram" (one
// TLS record, or one line without its "\n"). Leading 'D's of the timestamp
// are skipped, as for commands.
func ParseRegistration(msg []byte) (Registration, error) {
	if len(msg) > MaxCommand {
		return Registration{}, ErrRegistration
	}
	var f [3][]byte
	var r Registration
	switch {
	case split(msg, f[:2]):
	case split(msg, f[:3]) && string(f[2]) == "datagram":
		r.Datagram = true
	default:
		return Registration{}, ErrRegistration
	}
	var ok bool
	if r.Time, ok = parseTimestamp(f[0]); !ok {
		return Registration{}, ErrRegistration
	}
	if r.Session, ok = parseSessionID(f[1]); !ok {
		return Registration{}, ErrRegistration
	}
	return r, nil
}
