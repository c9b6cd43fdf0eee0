package client

import (
	"strings"
	"testing"
)

// FuzzParseMessage: whatever a server sends, the parser does not crash,
// and a message it accepts prints back as what came in.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		"1700000000|resp|login|4242\n",
		"1700000000|ring|incoming|alice\n",
		"1700000000|resp|invalid|call\n",
		"1700000000|call|drop|4242",
		"x|resp|login|1",
		"1|2|3",
		"1|a|b|c|d",
		"",
		"-5|||\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := parseMessage(b)
		if !ok {
			return
		}
		if strings.Count(m.kind+m.sub+m.value, "|") != 0 {
			t.Fatalf("a field holds a separator: %+v", m)
		}
		in := strings.TrimSuffix(string(b), "\n")
		if got := m.String(); got != in && !strings.HasPrefix(in, "+") && !strings.HasPrefix(in, "0") && !strings.HasPrefix(in, "-0") {
			t.Fatalf("parsed %q as %q", in, got)
		}
	})
}
