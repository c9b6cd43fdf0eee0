// Package conffile reads and writes the configuration format of the old C++
// dtoperator server, and offers it as a koanf parser.
//
// The format is one setting per line:
//
//	# a whole-line comment
//	command = 1991        # an inline comment
//	public  = "/etc/dtoperator/cert.pem"
//
// Blank lines are ignored and CRLF line ends are tolerated. Keys are
// case-insensitive and are returned in lower case; they consist of ASCII
// letters, digits, '_' and '-'. A value is the text after the first '=' up to
// a '#' or the end of the line, with surrounding white space removed. A value
// may be enclosed in double quotes, which are removed; inside quotes '#' is
// not a comment. There are no escapes, so a value can't contain both a '"'
// and a '#'. Every value is a string; setting a key twice is an error.
package conffile

import (
	"bytes"
	"fmt"
	"strings"
)

// Error is a syntax error in a legacy config file.
type Error struct {
	Line int    // 1-based line number
	Key  string // the key of the offending line, "" if none could be read
	Msg  string // what is wrong
	// First is, for a key set twice, the line that set it first.
	First int
}

// Error formats e as `line 4: key "command": missing "="` or
// `line 9: key "media" set twice (first on line 3)`.
func (e *Error) Error() string {
	switch {
	case e.First > 0:
		return fmt.Sprintf("line %d: key %q set twice (first on line %d)", e.Line, e.Key, e.First)
	case e.Key == "":
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	default:
		return fmt.Sprintf("line %d: key %q: %s", e.Line, e.Key, e.Msg)
	}
}

// Legacy is the koanf parser (koanf.Parser) for the legacy format. Its zero
// value is ready to use and it is safe for concurrent use.
type Legacy struct{}

// Unmarshal parses data into a flat map of lower-case keys to string values.
// The first syntax error is returned as an *Error.
func (Legacy) Unmarshal(data []byte) (map[string]any, error) {
	out := make(map[string]any)
	first := make(map[string]int)
	err := scan(data, func(e entry) error {
		if e.err != nil {
			return e.err
		}
		if prev, dup := first[e.key]; dup {
			return &Error{Line: e.line, Key: e.key, Msg: "set twice", First: prev}
		}
		first[e.key] = e.line
		out[e.key] = e.value
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Lines maps each key in data to the line that first sets it. It reads
// leniently, skipping lines that Unmarshal would refuse, so that a caller can
// name the line of a value that parsed but turned out to be invalid.
func Lines(data []byte) map[string]int {
	lines := make(map[string]int)
	_ = scan(data, func(e entry) error {
		if _, dup := lines[e.key]; e.err == nil && !dup {
			lines[e.key] = e.line
		}
		return nil
	})
	return lines
}

// entry is one setting read by scan, or the syntax error of its line.
type entry struct {
	line       int
	key, value string
	err        *Error
}

// scan calls fn for each non-blank, non-comment line of data, stopping at
// the first error fn returns.
func scan(data []byte, fn func(entry) error) error {
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		text := strings.TrimSpace(string(line))
		if text == "" || text[0] == '#' {
			continue
		}
		if err := fn(parseLine(n, text)); err != nil {
			return err
		}
	}
	return nil
}

// parseLine parses one trimmed line that is neither blank nor a comment.
func parseLine(n int, text string) entry {
	fail := func(key, msg string) entry {
		return entry{line: n, err: &Error{Line: n, Key: key, Msg: msg}}
	}
	i := strings.IndexAny(text, "=#")
	if i < 0 || text[i] == '#' {
		key, _, _ := strings.Cut(text, "#")
		return fail(shorten(strings.ToLower(strings.TrimSpace(key))), `missing "="`)
	}
	key, rest := strings.ToLower(strings.TrimSpace(text[:i])), text[i+1:]
	if key == "" {
		return fail("", `missing key before "="`)
	}
	if msg := checkKey(key); msg != "" {
		return fail(shorten(key), msg)
	}
	value, msg := parseValue(rest)
	if msg != "" {
		return fail(key, msg)
	}
	return entry{line: n, key: key, value: value}
}

// checkKey reports what is wrong with a lower-cased key, or "" if it is fine.
func checkKey(key string) string {
	for _, r := range key {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
		default:
			return fmt.Sprintf("invalid character %q in key", r)
		}
	}
	return ""
}

// parseValue returns the value in the text after '=', without comment,
// surrounding white space or quotes, or a message saying what is wrong.
func parseValue(rest string) (value, msg string) {
	rest = strings.TrimSpace(rest)
	if !strings.HasPrefix(rest, `"`) {
		value, _, _ = strings.Cut(rest, "#")
		return strings.TrimSpace(value), ""
	}
	value, after, ok := strings.Cut(rest[1:], `"`)
	if !ok {
		return "", "missing closing quote"
	}
	if after = strings.TrimSpace(after); after != "" && after[0] != '#' {
		return "", "unexpected text after closing quote"
	}
	return value, ""
}

// shorten truncates s for quoting in an error message.
func shorten(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
