package wire

import (
	"bytes"
	"testing"
)

// The fuzz targets check that the parsers never panic, that what they accept
// is well-formed, and that a message cut in two pieces and put together again
// (as a reader that got it in two reads would) parses the same.

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
		if err == nil {
			if c.Verb < Login || c.Verb > Timeout || c.Arg == "" || bytes.Count(msg, []byte("|")) != 3 {
				t.Fatalf("accepted bad command %q: %+v", msg, c)
			}
			if c.Verb != Login && (c.Session == 0 || c.Session > MaxSessionID) {
				t.Fatalf("accepted bad session in %q: %+v", msg, c)
			}
		}
		a, b := cutAt(msg, cut)
		c2, err2 := ParseCommand(append(append([]byte(nil), a...), b...))
		if c2 != c || (err == nil) != (err2 == nil) {
			t.Fatalf("pieces parse differently: %+v %v vs %+v %v", c, err, c2, err2)
		}
	})
}

func FuzzParseRegistration(f *testing.F) {
	for _, s := range []string{"1764168000|6144737382751829473", "DD1|2", "1|2|datagram", "1|2|x"} {
		f.Add([]byte(s), 2)
	}
	f.Fuzz(func(t *testing.T, msg []byte, cut int) {
		r, err := ParseRegistration(msg)
		if err == nil && (r.Session == 0 || r.Session > MaxSessionID || r.Time < 0) {
			t.Fatalf("accepted bad registration %q: %+v", msg, r)
		}
		a, b := cutAt(msg, cut)
		r2, err2 := ParseRegistration(append(append([]byte(nil), a...), b...))
		if r2 != r || (err == nil) != (err2 == nil) {
			t.Fatalf("pieces parse differently: %+v vs %+v", r, r2)
		}
	})
}

func cutAt(b []byte, n int) ([]byte, []byte) {
	if len(b) == 0 {
		return b, b
	}
	n = ((n % len(b)) + len(b)) % len(b)
	return b[:n], b[n:]
}
