package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/dtcall/dtcall/accounts"
)

// Hashes of the demo accounts (N=2^14 r=8 p=16), to build users files.
var (
	hashA = demoHash("righthand")
	hashB = demoHash("libprohibited")
	hashC = demoHash("zapper")
)

// demoHash returns the hash of the demo account name.
func demoHash(name string) string {
	for _, line := range strings.Split(string(demoUsers), "\n") {
		if n, h, ok := strings.Cut(line, " "); ok && n == name {
			return h
		}
	}
	panic("no demo account " + name)
}

// usersLines are a users file with comments, blank lines, an inline
// comment, a tab and an unterminated last line.
var usersLines = []string{
	"# staff\n",
	"\n",
	"alice " + hashA + "   # admin\n",
	"bob\t" + hashB + "\n",
	"\n",
	"# end\n",
	"carol " + hashC,
}

// writeUsers writes lines as dir/users with mode and returns its path.
func writeUsers(t *testing.T, dir string, mode os.FileMode, lines ...string) string {
	t.Helper()
	path := filepath.Join(dir, "users")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

// checkFolder fails unless dir holds exactly names: no temporary file.
func checkFolder(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, names) {
		t.Errorf("folder holds %q, want %q", got, names)
	}
}

// checkEdited checks the result of an edit that reported msg.
func checkEdited(t *testing.T, r userResult, msg string) {
	t.Helper()
	if r.code != exitOK || r.stdout != "" || !strings.Contains(r.stderr, msg) || !strings.Contains(r.stderr, "kill -HUP") {
		t.Errorf("result %+v, want success, %q and the reload hint", r, msg)
	}
}

// checkExactMode fails unless path has exactly mode.
func checkExactMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode() != mode {
		t.Errorf("mode %v, want %v", info.Mode(), mode)
	}
}

func TestUserPasswd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	users := writeUsers(t, dir, 0o640, usersLines...)
	r := runTestUser(t, "n3w s3cret\n", "passwd", "alice", "--users", users)
	checkEdited(t, r, `changed the password of user "alice" in `+users)

	lines := strings.SplitAfter(mustRead(t, users), "\n")
	want := slices.Clone(usersLines)
	prefix, rest, _ := strings.Cut(lines[2], " ")
	newHash, comment, _ := strings.Cut(rest, " ")
	want[2] = "alice " + newHash + "   # admin\n"
	if !slices.Equal(lines, want) || prefix != "alice" || comment != "  # admin\n" {
		t.Errorf("users file after passwd:\n%q\nwant\n%q", lines, want)
	}
	h, err := accounts.ParseMCF(newHash)
	if err != nil {
		t.Fatal(err)
	}
	if h.Params != accounts.DefaultParams || !h.Verify("n3w s3cret") {
		t.Errorf("new hash %+v does not verify the new password with the default parameters", h.Params)
	}
	checkExactMode(t, users, 0o640)
	checkFolder(t, dir, "users")
}

func TestUserRemove(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		line int // index in usersLines
	}{
		{"bob", 3},
		{"alice", 2},
		{"carol", 6}, // the unterminated last line
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			users := writeUsers(t, dir, 0o604, usersLines...)
			r := runTestUser(t, "", "remove", "--users", users, tt.name)
			checkEdited(t, r, `removed user "`+tt.name+`" from `+users)
			want := strings.Join(slices.Delete(slices.Clone(usersLines), tt.line, tt.line+1), "")
			if got := mustRead(t, users); got != want {
				t.Errorf("users file after remove:\n%s\nwant\n%s", got, want)
			}
			checkExactMode(t, users, 0o604)
			checkFolder(t, dir, "users")
		})
	}
}

// TestUserAddKeepsFile checks that add to an existing file keeps its
// comments, CRLF line endings and mode, and adds the user at the end.
func TestUserAddKeepsFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := "# staff\r\n\r\nalice " + hashA + " # admin\r\n"
	users := writeUsers(t, dir, 0o640, old)
	r := runTestUserAdd(t, "s3cret\n", "dave", "--users", users)
	checkEdited(t, r, `added user "dave" to `+users)
	got := mustRead(t, users)
	last, ok := strings.CutPrefix(got, old)
	if !ok || !strings.HasPrefix(last, "dave $s1$") || !strings.HasSuffix(last, "\r\n") || strings.Count(last, "\n") != 1 {
		t.Errorf("users file after add:\n%q", got)
	}
	checkHashLine(t, strings.TrimSuffix(last, "\r\n"), "dave", "s3cret", accounts.DefaultParams)
	checkExactMode(t, users, 0o640)
	checkFolder(t, dir, "users")
}

// TestUserEditKeepsOwner checks, as root, that an edit keeps the file's
// owner and group.
func TestUserEditKeepsOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file another owner")
	}
	dir := t.TempDir()
	users := writeUsers(t, dir, 0o640, usersLines...)
	if err := os.Chown(users, 4242, 4343); err != nil {
		t.Fatal(err)
	}
	checkEdited(t, runTestUser(t, "", "remove", "bob", "--users", users), "removed")
	info, err := os.Stat(users)
	if err != nil {
		t.Fatal(err)
	}
	st := info.Sys().(*syscall.Stat_t)
	if st.Uid != 4242 || st.Gid != 4343 {
		t.Errorf("owner %d:%d, want 4242:4343", st.Uid, st.Gid)
	}
}

// TestUserEditSymlink checks that an edit through a symbolic link replaces
// the file it points to and keeps the link.
func TestUserEditSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	users := writeUsers(t, target, 0o600, usersLines...)
	link := filepath.Join(dir, "users")
	if err := os.Symlink(users, link); err != nil {
		t.Fatal(err)
	}
	checkEdited(t, runTestUser(t, "", "remove", "carol", "--users", link), "removed")
	if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("link replaced: %v, %v", info, err)
	}
	if got := mustRead(t, users); strings.Contains(got, "carol") {
		t.Errorf("users file still has carol:\n%s", got)
	}
	checkFolder(t, target, "users")
}

func TestUserList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	aliceHash, err := accounts.NewHash("s3cret", accounts.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	tinyHash, err := accounts.NewHash("s3cret", accounts.Params{LogN: 4, R: 1, P: 1})
	if err != nil {
		t.Fatal(err)
	}
	users := writeUsers(t, dir, 0o600, string(demoUsers), "alice "+aliceHash+" # admin\n", "tiny "+tinyHash+"\n")
	r := runTestUser(t, "", "list", "--users", users)
	want := "righthand      scrypt N=2^14 r=8 p=16 (old, p=16)\n" +
		"libprohibited  scrypt N=2^14 r=8 p=16 (old, p=16)\n" +
		"zapper         scrypt N=2^14 r=8 p=16 (old, p=16)\n" +
		"alice          scrypt N=2^15 r=8 p=1 (new)\n" +
		"tiny           scrypt N=2^4 r=1 p=1\n"
	if r.code != exitOK || r.stdout != want || r.stderr != "" {
		t.Errorf("result %+v\nwant stdout\n%s", r, want)
	}

	empty := writeFile(t, dir, "empty", "# nobody\n")
	r = runTestUser(t, "", "list", "--users", empty)
	if r.code != exitOK || r.stdout != "" || !strings.Contains(r.stderr, "has no accounts") {
		t.Errorf("empty file: result %+v", r)
	}
}

// TestUserEditRefusals checks that each refused command exits with the
// right status and message and leaves the users file as it was.
func TestUserEditRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	users := writeUsers(t, dir, 0o600, usersLines...)
	missing := filepath.Join(dir, "missing")
	broken := writeFile(t, dir, "broken", "alice notahash\n")
	tests := []struct {
		name, stdin string
		args        []string
		code        int
		want        string
	}{
		{"add existing", "s3cret\n", []string{"add", "bob", "--users", users}, exitError,
			`users file ` + users + `: line 4: user "bob" already exists`},
		{"passwd unknown user", "s3cret\n", []string{"passwd", "dave", "--users", users}, exitError,
			`users file ` + users + `: no user "dave"`},
		{"remove unknown user", "", []string{"remove", "dave", "--users", users}, exitError,
			`users file ` + users + `: no user "dave"`},
		{"passwd empty password", "\n", []string{"passwd", "bob", "--users", users}, exitError, "empty password refused"},
		{"passwd missing file", "s3cret\n", []string{"passwd", "bob", "--users", missing}, exitError,
			"users file: open " + missing + ": no such file or directory"},
		{"remove missing file", "", []string{"remove", "bob", "--users", missing}, exitError,
			"users file: open " + missing + ": no such file or directory"},
		{"list missing file", "", []string{"list", "--users", missing}, exitError,
			"users file: open " + missing + ": no such file or directory"},
		{"passwd folder", "s3cret\n", []string{"passwd", "bob", "--users", dir}, exitError, "not a regular file"},
		{"remove folder", "", []string{"remove", "bob", "--users", dir}, exitError, "not a regular file"},
		{"list folder", "", []string{"list", "--users", dir}, exitError, "is a directory"},
		{"passwd broken file", "s3cret\n", []string{"passwd", "alice", "--users", broken}, exitError,
			"users file " + broken + ": line 1: bad hash"},
		{"remove broken file", "", []string{"remove", "alice", "--users", broken}, exitError,
			"users file " + broken + ": line 1: bad hash"},
		{"list broken file", "", []string{"list", "--users", broken}, exitError,
			"users file " + broken + ": line 1: bad hash"},
		{"passwd invalid name", "s3cret\n", []string{"passwd", "a#b", "--users", users}, exitUsage, `invalid name "a#b"`},
		{"remove invalid name", "", []string{"remove", "a b", "--users", users}, exitUsage, `invalid name "a b"`},
		{"passwd without --users", "s3cret\n", []string{"passwd", "bob"}, exitUsage, "--users FILE is required"},
		{"remove without --users", "", []string{"remove", "bob"}, exitUsage, "--users FILE is required"},
		{"list without --users", "", []string{"list"}, exitUsage, "--users FILE is required"},
		{"remove empty --users", "", []string{"remove", "bob", "--users="}, exitUsage, "--users FILE is required"},
		{"list with a name", "", []string{"list", "bob", "--users", users}, exitUsage, `unexpected argument "bob"`},
		{"remove two names", "", []string{"remove", "bob", "carol", "--users", users}, exitUsage, "want exactly one NAME"},
		{"remove with --cost", "", []string{"remove", "bob", "--cost", "legacy", "--users", users}, exitUsage, "unknown flag: --cost"},
		{"passwd bad cost", "s3cret\n", []string{"passwd", "bob", "--cost", "max", "--users", users}, exitUsage, `--cost "max"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runTestUser(t, tt.stdin, tt.args...)
			if r.code != tt.code || r.stdout != "" || !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stderr, "kill -HUP") {
				t.Errorf("result %+v, want code %d and %q", r, tt.code, tt.want)
			}
		})
	}
	t.Cleanup(func() {
		if got := mustRead(t, users); got != strings.Join(usersLines, "") {
			t.Errorf("a refused command changed the users file:\n%s", got)
		}
		checkFolder(t, dir, "broken", "users")
	})
}

func TestUserUsage(t *testing.T) {
	t.Parallel()
	verbs := []string{"dtoperator user add NAME", "dtoperator user passwd NAME --users FILE",
		"dtoperator user remove NAME --users FILE", "dtoperator user list --users FILE"}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // "" when the usage goes to stdout
	}{
		{"no command", nil, exitUsage, "dtoperator user: missing command"},
		{"unknown command", []string{"rename", "bob"}, exitUsage, `dtoperator user: unknown command "rename"`},
		{"--help", []string{"--help"}, exitOK, ""},
		{"-h", []string{"-h"}, exitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runTestUser(t, "", tt.args...)
			usage, other := r.stdout, r.stderr
			if tt.stderr != "" {
				usage, other = r.stderr, r.stdout
			}
			if r.code != tt.code || other != "" || !strings.HasPrefix(usage, tt.stderr) {
				t.Errorf("result %+v, want code %d", r, tt.code)
			}
			for _, want := range append(verbs, "--users file", "--cost", "kill -HUP") {
				if !strings.Contains(usage, want) {
					t.Errorf("usage lacks %q:\n%s", want, usage)
				}
			}
		})
	}
	for _, v := range userVerbs {
		r := runTestUser(t, "", v.name, "--help")
		if r.code != exitOK || r.stderr != "" || !strings.HasPrefix(r.stdout, "Usage: dtoperator user "+v.name+" ") ||
			!strings.Contains(r.stdout, "--users file") {
			t.Errorf("%s --help: result %+v", v.name, r)
		}
	}
}
