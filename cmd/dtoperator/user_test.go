package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dtcall/dtcall/accounts"
)

// userResult is what one run of a user command produced.
type userResult struct {
	code           int
	stdout, stderr string
}

// runTestUser runs "dtoperator user" with args and stdin (not a terminal).
// It fails the test if the output shows the password "s3cret" or a hash,
// except for the line "user add" prints without --users.
func runTestUser(t *testing.T, stdin string, args ...string) userResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runUser(args, userIO{stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr})
	r := userResult{code, stdout.String(), stderr.String()}
	if strings.Contains(r.stdout+r.stderr, "s3cret") {
		t.Errorf("output contains the password: %+v", r)
	}
	printsLine := len(args) > 0 && args[0] == "add" && !slices.Contains(args, "--users") && code == exitOK
	if hashPattern.MatchString(r.stderr) || !printsLine && hashPattern.MatchString(r.stdout) {
		t.Errorf("output contains a hash: %+v", r)
	}
	return r
}

// hashPattern matches the start of a libscrypt MCF hash.
var hashPattern = regexp.MustCompile(`\$s1\$[0-9a-f]{6}\$`)

// runTestUserAdd runs "dtoperator user add" with args and stdin.
func runTestUserAdd(t *testing.T, stdin string, args ...string) userResult {
	t.Helper()
	return runTestUser(t, stdin, append([]string{"add"}, args...)...)
}

// checkHashLine checks that line is "name hash" with a hash of password
// using params.
func checkHashLine(t *testing.T, line, name, password string, params accounts.Params) {
	t.Helper()
	gotName, mcf, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
	if !ok || gotName != name {
		t.Fatalf("line %q, want %q and a hash", line, name)
	}
	h, err := accounts.ParseMCF(mcf)
	if err != nil {
		t.Fatal(err)
	}
	if h.Params != params {
		t.Errorf("params %+v, want %+v", h.Params, params)
	}
	if !h.Verify(password) {
		t.Errorf("hash %s does not verify the password", mcf)
	}
}

func TestUserAddStdout(t *testing.T) {
	t.Parallel()
	r := runTestUserAdd(t, "s3cret pass\r\n", "alice", "--cost", "default")
	if r.code != exitOK || r.stderr != "" || !strings.HasSuffix(r.stdout, "\n") {
		t.Fatalf("result %+v", r)
	}
	checkHashLine(t, r.stdout, "alice", "s3cret pass", accounts.DefaultParams)
}

func TestUserAddFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	r := runTestUserAdd(t, "s3cret", "--users", users, "bob")
	if r.code != exitOK || r.stdout != "" || !strings.Contains(r.stderr, `added user "bob"`) {
		t.Fatalf("result %+v", r)
	}
	checkMode(t, users, 0o600)

	// A second user goes below, after ending an unterminated last line.
	if err := os.WriteFile(users, bytes.TrimSuffix([]byte(mustRead(t, users)), []byte("\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runTestUserAdd(t, "other\n", "carol", "--users", users); r.code != exitOK {
		t.Fatalf("second user: %+v", r)
	}
	entries, err := accounts.LoadFile(users)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Name != "bob" || entries[1].Name != "carol" || !entries[0].Hash.Verify("s3cret") {
		t.Errorf("users file entries %+v", entries)
	}
}

func TestUserAddRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	users := writeFile(t, dir, "users", string(demoUsers))
	broken := writeFile(t, dir, "broken", "alice notahash\n")
	tests := []struct {
		name, stdin string
		args        []string
		code        int
		want        string
	}{
		{"existing name", "s3cret\n", []string{"zapper", "--users", users}, exitError, `users file ` + users + `: line 12: user "zapper" already exists`},
		{"broken file", "s3cret\n", []string{"bob", "--users", broken}, exitError, "users file " + broken + ": line 1"},
		{"empty password", "\n", []string{"bob"}, exitError, "empty password refused"},
		{"no input", "", []string{"bob"}, exitError, "empty password refused"},
		{"bar in password", "a|b\n", []string{"bob"}, exitError, "password contains '|'"},
		{"long password", strings.Repeat("p", 1000), []string{"bob"}, exitError, "password longer than 900 bytes"},
		{"bad name", "s3cret\n", []string{"a|b"}, exitUsage, `invalid name "a|b"`},
		{"no name", "s3cret\n", nil, exitUsage, "want exactly one NAME"},
		{"two names", "s3cret\n", []string{"a", "b"}, exitUsage, "want exactly one NAME"},
		{"bad cost", "s3cret\n", []string{"bob", "--cost", "high"}, exitUsage, `--cost "high": want default or legacy`},
		{"unknown flag", "s3cret\n", []string{"bob", "--file", "x"}, exitUsage, "unknown flag: --file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runTestUserAdd(t, tt.stdin, tt.args...)
			if r.code != tt.code || r.stdout != "" || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("result %+v, want code %d and %q", r, tt.code, tt.want)
			}
		})
	}
	if got := mustRead(t, users); got != string(demoUsers) {
		t.Errorf("refused user add changed the users file:\n%s", got)
	}
}

func TestUserAddHelp(t *testing.T) {
	t.Parallel()
	r := runTestUserAdd(t, "", "--help")
	if r.code != exitOK || !strings.Contains(r.stdout, "--cost") || !strings.Contains(r.stdout, "--users file") {
		t.Errorf("result %+v", r)
	}
}

func TestUserAddCostLegacy(t *testing.T) {
	t.Parallel()
	opts, err := parseUserArgs(userVerbs[0], []string{"--cost=legacy", "bob"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := accounts.Params{LogN: 14, R: 8, P: 16}
	if opts.params != want || opts.name != "bob" || opts.users != "" {
		t.Errorf("options %+v, want legacy params %+v", opts, want)
	}
}

func TestPromptPassword(t *testing.T) {
	t.Parallel()
	reader := func(answers ...string) func() ([]byte, error) {
		return func() ([]byte, error) {
			if len(answers) == 0 {
				return nil, errors.New("no more input")
			}
			a := answers[0]
			answers = answers[1:]
			return []byte(a), nil
		}
	}
	var w bytes.Buffer
	got, err := promptPassword(reader("s3cret", "s3cret"), &w)
	if err != nil || got != "s3cret" {
		t.Errorf("promptPassword = %q, %v", got, err)
	}
	if w.String() != "Password: \nPassword again: \n" {
		t.Errorf("prompts %q", w.String())
	}
	if _, err := promptPassword(reader("s3cret", "s3creT"), &bytes.Buffer{}); err == nil {
		t.Error("different passwords accepted")
	}
	if _, err := promptPassword(reader("s3cret"), &bytes.Buffer{}); err == nil {
		t.Error("read error ignored")
	}
}

// TestReadPasswordTerminalFallback checks that a terminal flag with a stdin
// that has no file descriptor reads a line.
func TestReadPasswordTerminalFallback(t *testing.T) {
	t.Parallel()
	got, err := readPassword(strings.NewReader("s3cret\nrest"), &bytes.Buffer{}, true)
	if err != nil || got != "s3cret" {
		t.Errorf("readPassword = %q, %v", got, err)
	}
}
