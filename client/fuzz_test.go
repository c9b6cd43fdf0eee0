package client

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzParseMessage: whatever a server sends, the parser does not crash; a
// message it accepts formats back, framed as a line, to one that parses the
// same (parse(format(m)) == m) and is exactly the input when its time field
// is in canonical form. As a QUIC stream, the same bytes read line by line are
// the same messages whether they arrive whole, in two pieces or byte by
// byte, and are the input's lines.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		"1700000000|resp|login|4242\n",
		"1700000000|ring|incoming|alice\n",
		"1700000000|resp|invalid|command\n",
		"1700000000|call|drop|4242",
		"x|resp|login|1",
		"1|2|3",
		"1|a|b|c|d",
		"",
		"-5|||\n",
		"1|resp|login|1\nD\n2|call|end|bob\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkMessage(t, b)
		checkLines(t, b)
	})
}

func checkMessage(t *testing.T, b []byte) {
	t.Helper()
	m, ok := parseMessage(b)
	if !ok {
		return
	}
	if strings.Contains(m.kind+m.sub+m.value, "|") {
		t.Fatalf("a field holds a separator: %+v", m)
	}
	// Framed as a line: the parser strips one "\n", so a value that ends
	// in "\n" (a record "ts|k|s|v\n\n") survives only framed.
	out := m.String()
	if m2, ok := parseMessage([]byte(out + "\n")); !ok || m2 != m {
		t.Fatalf("%q parsed as %+v, formatted as %q, parsed again as %+v", b, m, out, m2)
	}
	in := strings.TrimSuffix(string(b), "\n")
	ts, _, _ := strings.Cut(in, "|")
	if ts == strconv.FormatInt(m.time, 10) && out != in {
		t.Fatalf("%q formatted as %q", in, out)
	}
}

// checkLines reads b as a command stream through lineChannel's reader.
func checkLines(t *testing.T, b []byte) {
	t.Helper()
	want, wantErr := modelLines(b)
	cut := len(b) / 3
	for name, r := range map[string]io.Reader{
		"whole":      bytes.NewReader(b),
		"two pieces": io.MultiReader(bytes.NewReader(b[:cut]), bytes.NewReader(b[cut:])),
		"one byte":   iotest.OneByteReader(bytes.NewReader(b)),
	} {
		got, err := readLines(r)
		if !errors.Is(err, wantErr) || len(got) != len(want) {
			t.Fatalf("%s: %d lines, %v; want %d lines, %v", name, len(got), err, len(want), wantErr)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: line %d = %q, want %q", name, i, got[i], want[i])
			}
		}
	}
}

// readLines returns the messages lineChannel reads from r until it fails.
func readLines(r io.Reader) ([]string, error) {
	l := &lineChannel{br: bufio.NewReaderSize(r, maxLine)}
	var out []string
	for range 1 << 20 { // bounded: each pass consumes a line
		msg, err := l.readMessage()
		if err != nil {
			return out, err
		}
		out = append(out, string(msg))
	}
	return out, errors.New("too many lines")
}

// modelLines is what readLines must return: each "\n"-terminated line of b
// until one longer than the reader's buffer (errLongLine); the rest, not
// terminated, is no message (io.EOF).
func modelLines(b []byte) ([]string, error) {
	var out []string
	for {
		i := bytes.IndexByte(b, '\n')
		switch {
		case i >= maxLine || i < 0 && len(b) >= maxLine:
			return out, errLongLine
		case i < 0:
			return out, io.EOF
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
}
