package wire

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"
)

// The fuzz targets check that the parsers never panic, that what they accept
// is well-formed, that a parsed message formats back to one that parses the
// same (parse(format(x)) == x) and is no longer, and that one more '|'
// anywhere in an accepted message (cut says where) makes it refused: the
// field count is exact.

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"1764168000|login|zapper|railgun",
		"D1764168000|call|righthand|6144737382751829473",
		"1764168000|accept|zapper|1",
		"1764168000|end|zapper|9223372036854775807",
		"1|call|bob|12|extra",
	} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, msg []byte, cut int) {
		c, err := ParseCommand(msg)
		if err != nil {
			return
		}
		if c.Verb < Login || c.Verb > Timeout || c.Arg == "" || bytes.Count(msg, []byte("|")) != 3 {
			t.Fatalf("accepted bad command %q: %+v", msg, c)
		}
		if c.Verb != Login && (c.Session == 0 || c.Session > MaxSessionID) {
			t.Fatalf("accepted bad session in %q: %+v", msg, c)
		}
		out := formatCommand(c)
		if c2, err := ParseCommand(out); err != nil || c2 != c {
			t.Fatalf("%q parsed as %+v, formatted as %q, parsed again as %+v, %v", msg, c, out, c2, err)
		}
		if len(out) > len(msg) {
			t.Fatalf("%q formatted as the longer %q", msg, out)
		}
		if c2, err := ParseCommand(insertBar(msg, cut)); err == nil {
			t.Fatalf("%q with one more '|' accepted: %+v", insertBar(msg, cut), c2)
		}
		checkNoPassword(t, c)
	})
}

// formatCommand writes c as a client would: ts|verb|arg|session, or the
// password in place of the session for a login.
func formatCommand(c Command) []byte {
	last := c.Session.String()
	if c.Verb == Login {
		last = c.Password
	}
	return fmt.Appendf(nil, "%d|%s|%s|%s", c.Time, c.Verb, c.Arg, last)
}

// checkNoPassword checks that a command logs its verb and user name and
// nothing else: never the password.
func checkNoPassword(t *testing.T, c Command) {
	t.Helper()
	v := c.LogValue()
	want := map[string]string{"verb": c.Verb.String(), "arg": c.Arg}
	if v.Kind() != slog.KindGroup || len(v.Group()) != len(want) {
		t.Fatalf("LogValue of %+v = %v: want verb and arg only", c, v)
	}
	for _, a := range v.Group() {
		if w, ok := want[a.Key]; !ok || a.Value.String() != w {
			t.Fatalf("LogValue of %+v logs %s=%q", c, a.Key, a.Value)
		}
	}
}

func FuzzParseRegistration(f *testing.F) {
	for _, s := range []string{"1764168000|6144737382751829473", "DD1|2", "1|2|datagram", "1|2|x"} {
		f.Add([]byte(s), 2)
	}
	f.Fuzz(func(t *testing.T, msg []byte, cut int) {
		r, err := ParseRegistration(msg)
		if err != nil {
			return
		}
		if r.Session == 0 || r.Session > MaxSessionID || r.Time < 0 {
			t.Fatalf("accepted bad registration %q: %+v", msg, r)
		}
		out := fmt.Appendf(nil, "%d|%d", r.Time, r.Session)
		if r.Datagram {
			out = append(out, "|datagram"...)
		}
		if r2, err := ParseRegistration(out); err != nil || r2 != r {
			t.Fatalf("%q parsed as %+v, formatted as %q, parsed again as %+v, %v", msg, r, out, r2, err)
		}
		if len(out) > len(msg) {
			t.Fatalf("%q formatted as the longer %q", msg, out)
		}
		if r2, err := ParseRegistration(insertBar(msg, cut)); err == nil {
			t.Fatalf("%q with one more '|' accepted: %+v", insertBar(msg, cut), r2)
		}
	})
}

// insertBar returns b with a '|' inserted at n (taken modulo len(b)+1).
func insertBar(b []byte, n int) []byte {
	n = ((n % (len(b) + 1)) + len(b) + 1) % (len(b) + 1)
	out := append(bytes.Clone(b[:n]), '|')
	return append(out, b[n:]...)
}
