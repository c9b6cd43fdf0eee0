package accounts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Users file layout: one account per line, "name <hash>", separated by
// white space. "#" starts a comment, on its own line or after the hash.
// Blank lines are ignored; lines may end in CRLF. A UTF-8 byte order mark
// at the start of the file is skipped.
const (
	maxLine    = 4096 // bytes per line, not counting the line ending
	maxNameLen = 64   // bytes
	bom        = "\ufeff"
)

var errLineTooLong = fmt.Errorf("line longer than %d bytes", maxLine)

// Entry is one account of the users file. Line is its 1-based line number.
type Entry struct {
	Name string
	Hash Hash
	Line int
}

// ValidName reports whether name can be an account name: 1..64 bytes of
// valid UTF-8 with no white space, no control characters, no '|' (the
// wire protocol's field separator) and no '#' (the users file's comment
// marker).
func ValidName(name string) bool {
	return nameError(name) == nil
}

// nameError reports why name is not a valid account name, or nil.
func nameError(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("name is %d bytes, want 1..%d", len(name), maxNameLen)
	}
	if !utf8.ValidString(name) {
		return errors.New("name is not valid UTF-8")
	}
	for _, r := range name {
		switch {
		case unicode.IsSpace(r):
			return errors.New("name contains white space")
		case unicode.IsControl(r):
			return errors.New("name contains a control character")
		case r == '|' || r == '#':
			return fmt.Errorf("name contains %q", r)
		}
	}
	return nil
}

// ParseUsers reads a users file from r until EOF and returns its accounts
// in file order. It stops at the first problem and returns an error
// starting with "line N: ". Names and hashes are checked (ParseMCF) but no
// password is verified, so ParseUsers is cheap.
func ParseUsers(r io.Reader) ([]Entry, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxLine+2) // scanLine fails before the buffer is full
	sc.Split(scanLine)
	var entries []Entry
	first := make(map[string]int) // name -> line it first appeared on
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, bom)
		}
		e, ok, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if !ok {
			continue
		}
		if prev, dup := first[e.Name]; dup {
			return nil, fmt.Errorf("line %d: duplicate name %q (first on line %d)", n, e.Name, prev)
		}
		first[e.Name] = n
		e.Line = n
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, errLineTooLong) || errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("line %d: %w", n+1, errLineTooLong)
		}
		return nil, fmt.Errorf("read after line %d: %w", n, err)
	}
	return entries, nil
}

// parseLine parses one line without its line ending. ok is false for a
// blank or comment-only line.
func parseLine(line string) (e Entry, ok bool, err error) {
	line, _, _ = strings.Cut(line, "#")
	fields := strings.Fields(line)
	switch len(fields) {
	case 0:
		return Entry{}, false, nil
	case 1:
		return Entry{}, false, errors.New("missing hash after the name")
	case 2:
	default:
		return Entry{}, false, fmt.Errorf("%d fields, want name and hash (comments start with #)", len(fields))
	}
	if err := nameError(fields[0]); err != nil {
		return Entry{}, false, fmt.Errorf("invalid name: %w", err)
	}
	h, err := ParseMCF(fields[1])
	if err != nil {
		return Entry{}, false, err // already says "bad hash: ..."
	}
	return Entry{Name: fields[0], Hash: h}, true, nil
}

// scanLine is a bufio.SplitFunc like bufio.ScanLines that fails with
// errLineTooLong as soon as a line exceeds maxLine bytes. Its result does
// not depend on how the input is split into reads.
func scanLine(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		line := bytes.TrimSuffix(data[:i], []byte{'\r'})
		if len(line) > maxLine {
			return 0, nil, errLineTooLong
		}
		return i + 1, line, nil
	}
	if len(data) > maxLine+1 { // too long even if the last byte is the CR of a CRLF
		return 0, nil, errLineTooLong
	}
	if atEOF && len(data) > 0 {
		line := bytes.TrimSuffix(data, []byte{'\r'})
		if len(line) > maxLine {
			return 0, nil, errLineTooLong
		}
		return len(data), line, nil
	}
	return 0, nil, nil
}

// LoadFile reads and parses the users file at path. Errors name the file:
// "users file /etc/dtcall/users: line 3: ...".
func LoadFile(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err) // the *PathError names path
	}
	defer f.Close()
	entries, err := ParseUsers(f)
	if err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	return entries, nil
}
