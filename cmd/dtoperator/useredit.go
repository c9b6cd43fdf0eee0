package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dtcall/dtcall/accounts"
)

// newUsersFileMode is the mode of a users file that "user add" creates.
const newUsersFileMode = 0o600

// usersFile is a users file held as its lines, so that an edit changes
// only the line it must and keeps every comment, blank line and line
// ending of the others.
type usersFile struct {
	path    string      // as the operator named it, for messages
	target  string      // path with symbolic links resolved: the file to replace
	info    fs.FileInfo // of target; nil if the file does not exist yet
	lines   []string    // each with its line ending; the last may lack one
	entries []accounts.Entry
}

// editUsersFile reads the users file at path (a missing one is empty if
// create is set), applies one edit (add, setHash or remove) and replaces
// the file atomically with the result. It refuses a file that does not
// parse, and checks that the edited one does before writing it.
func editUsersFile(path string, create bool, edit func(*usersFile) error) error {
	f, err := readUsersFile(path, create)
	if err != nil {
		return err
	}
	if err := edit(f); err != nil {
		return err
	}
	if err := f.parse(); err != nil { // a bug in the edit
		return fmt.Errorf("users file %s: the edited file would not parse: %w", path, err)
	}
	return f.write()
}

// readUsersFile reads and parses the users file at path. With create, a
// missing file is read as an empty one.
func readUsersFile(path string, create bool) (*usersFile, error) {
	f := &usersFile{path: path, target: path}
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err) // the *PathError names path
	}
	defer file.Close()
	if f.info, err = file.Stat(); err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	if !f.info.Mode().IsRegular() {
		return nil, fmt.Errorf("users file %s: not a regular file", path)
	}
	data, err := io.ReadAll(file)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	if f.target, err = filepath.EvalSymlinks(path); err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	f.lines = splitLines(data)
	if err := f.parse(); err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	return f, nil
}

// splitLines splits data after each '\n'; the last line may lack one.
func splitLines(data []byte) []string {
	var lines []string
	for line := range bytes.Lines(data) {
		lines = append(lines, string(line))
	}
	return lines
}

// parse parses f.lines into f.entries. The edits leave f.entries stale
// until it runs.
func (f *usersFile) parse() error {
	entries, err := accounts.ParseUsers(strings.NewReader(strings.Join(f.lines, "")))
	if err != nil {
		return err
	}
	f.entries = entries
	return nil
}

// lookup returns the entry of name, or an error saying the file lacks it.
func (f *usersFile) lookup(name string) (accounts.Entry, error) {
	for _, e := range f.entries {
		if e.Name == name {
			return e, nil
		}
	}
	return accounts.Entry{}, fmt.Errorf("users file %s: no user %q", f.path, name)
}

// checkNew fails if the file already has name.
func (f *usersFile) checkNew(name string) error {
	if e, err := f.lookup(name); err == nil {
		return fmt.Errorf("users file %s: line %d: user %q already exists", f.path, e.Line, name)
	}
	return nil
}

// add appends the line "name hash" with the file's line ending, first
// ending an unterminated last line.
func (f *usersFile) add(name, hash string) error {
	if err := f.checkNew(name); err != nil {
		return err
	}
	eol := "\n"
	for _, line := range slices.Backward(f.lines) {
		if strings.HasSuffix(line, "\n") {
			if strings.HasSuffix(line, "\r\n") {
				eol = "\r\n"
			}
			break
		}
	}
	if n := len(f.lines); n > 0 && !strings.HasSuffix(f.lines[n-1], "\n") {
		f.lines[n-1] += eol
	}
	f.lines = append(f.lines, name+" "+hash+eol)
	return nil
}

// setHash replaces the hash on the line of name, keeping the rest of the
// line: its spacing, a comment after the hash and its line ending.
func (f *usersFile) setHash(name, hash string) error {
	e, err := f.lookup(name)
	if err != nil {
		return err
	}
	line := f.lines[e.Line-1]
	code, _, _ := strings.Cut(line, "#")
	fields := strings.Fields(code) // name and hash: ParseUsers checked
	nameEnd := strings.Index(line, fields[0]) + len(fields[0])
	start := nameEnd + strings.Index(line[nameEnd:], fields[1])
	f.lines[e.Line-1] = line[:start] + hash + line[start+len(fields[1]):]
	return nil
}

// remove deletes the line of name, with any comment on it.
func (f *usersFile) remove(name string) error {
	e, err := f.lookup(name)
	if err != nil {
		return err
	}
	f.lines = slices.Delete(f.lines, e.Line-1, e.Line)
	return nil
}

// write replaces the file with f.lines (replaceFile), keeping its mode
// and, when running as root, its owner and group. A new file gets mode
// newUsersFileMode.
func (f *usersFile) write() error {
	mode := fs.FileMode(newUsersFileMode)
	if f.info != nil {
		mode = f.info.Mode().Perm()
	}
	err := replaceFile(f.target, []byte(strings.Join(f.lines, "")), func(tmp *os.File) error {
		if err := tmp.Chmod(mode); err != nil {
			return err
		}
		if f.info != nil && os.Geteuid() == 0 {
			return copyOwner(tmp, f.info)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write users file %s: %w", f.path, err)
	}
	return nil
}
