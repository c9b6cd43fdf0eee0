package accounts

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sampleUsers is a users file of the old distribution's three accounts,
// with the comments and spacing an operator might use.
var sampleUsers = "# dtcall users: name <libscrypt hash>\n" +
	"\n" +
	"righthand " + samples[0].hash + "\n" +
	"libprohibited\t" + samples[1].hash + "   # added 2019\r\n" +
	"   \t\r\n" +
	"  zapper  \t " + samples[2].hash + "#no space before comment\n" +
	"#" + "disabled " + samples[0].hash + "\n"

func TestParseUsersSample(t *testing.T) {
	got, err := ParseUsers(strings.NewReader(sampleUsers))
	if err != nil {
		t.Fatal(err)
	}
	wantLines := []int{3, 4, 6}
	if len(got) != len(samples) {
		t.Fatalf("got %d entries, want %d", len(got), len(samples))
	}
	for i, e := range got {
		if e.Name != samples[i].name || e.Hash.String() != samples[i].hash || e.Line != wantLines[i] {
			t.Errorf("entry %d = %q %v line %d, want %q %s line %d",
				i, e.Name, e.Hash, e.Line, samples[i].name, samples[i].hash, wantLines[i])
		}
	}
}

func TestParseUsers(t *testing.T) {
	h1, h2 := mustHash(t, "one"), mustHash(t, "two")
	tests := []struct {
		name, in string
		want     []string // "name@line" of each entry
	}{
		{"empty", "", nil},
		{"only comments", "# a\n#b\n   # c\n", nil},
		{"blank lines", "\n\n \t \n\r\n", nil},
		{"one", "alice " + h1, []string{"alice@1"}},
		{"no final newline", "alice " + h1 + "\nbob " + h2, []string{"alice@1", "bob@2"}},
		{"final CR", "alice " + h1 + "\r", []string{"alice@1"}},
		{"CRLF", "alice " + h1 + "\r\n\r\nbob " + h2 + "\r\n", []string{"alice@1", "bob@3"}},
		{"tabs", "\talice\t\t" + h1 + "\t\n", []string{"alice@1"}},
		{"inline comment", "alice " + h1 + " # the admin\n", []string{"alice@1"}},
		{"comment glued to hash", "alice " + h1 + "#x y z\n", []string{"alice@1"}},
		{"commented out", "#alice " + h1 + "\nbob " + h2, []string{"bob@2"}},
		{"unicode name", "zoë " + h1, []string{"zoë@1"}},
		{"BOM", "\ufeffalice " + h1, []string{"alice@1"}},
		{"64-byte name", strings.Repeat("n", 64) + " " + h1, []string{strings.Repeat("n", 64) + "@1"}},
		{"comment with invalid UTF-8", "alice " + h1 + " # \xff\xfe\n", []string{"alice@1"}},
		{"long comment", "alice " + h1 + " #" + strings.Repeat("x", maxLine-len(h1)-8) + "\r\n", []string{"alice@1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := ParseUsers(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				got = append(got, e.Name+"@"+strconv.Itoa(e.Line))
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseUsersErrors(t *testing.T) {
	h1, h2 := mustHash(t, "one"), mustHash(t, "two")
	long := strings.Repeat("x", maxLine)
	tests := []struct{ name, in, want string }{
		{"missing hash", "alice " + h1 + "\nbob\n", "line 2: missing hash after the name"},
		{"missing hash before comment", "\nbob # " + h2 + "\n", "line 2: missing hash after the name"},
		{"extra field", "alice " + h1 + " extra\n", "line 1: 3 fields, want name and hash (comments start with #)"},
		{"extra hash", "\n\nalice " + h1 + " " + h2, "line 3: 3 fields, want name and hash (comments start with #)"},
		{"bad hash", "alice " + h1 + "\nbob $s1$0e0810$abc$def\n", "line 2: bad hash: salt: not standard base64: illegal base64 data at input byte 0"},
		{"short key", "bob $s1$0e0810$gSWZo3ioKoQ5I8kCbc8A9A==$gSWZo3ioKoQ5I8kCbc8A9A==", "line 1: bad hash: key is 16 bytes, want 64"},
		{"password for hash", "bob hunter2", "line 1: bad hash: does not start with $s1$"},
		{"duplicate", "alice " + h1 + "\nbob " + h2 + "\r\n\nalice " + h2, `line 4: duplicate name "alice" (first on line 1)`},
		{"name with pipe", "al|ice " + h1, "line 1: invalid name: name contains '|'"},
		{"name too long", strings.Repeat("n", 65) + " " + h1, "line 1: invalid name: name is 65 bytes, want 1..64"},
		{"name not UTF-8", "\n\xffalice " + h1, "line 2: invalid name: name is not valid UTF-8"},
		{"name with control", "al\x00ice " + h1, "line 1: invalid name: name contains a control character"},
		{"name with DEL", "al\x7fice " + h1, "line 1: invalid name: name contains a control character"},
		{"name with C1 control", "al\u0080ice " + h1, "line 1: invalid name: name contains a control character"},
		{"long line", "alice " + h1 + "\n" + long + "x\n", "line 2: line longer than 4096 bytes"},
		{"long line CRLF", long + "x\r\n", "line 1: line longer than 4096 bytes"},
		{"long last line", "\n" + long + "x", "line 2: line longer than 4096 bytes"},
		{"very long line", "\n\n" + strings.Repeat(long, 10), "line 3: line longer than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := ParseUsers(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("got %d entries, want error %q", len(entries), tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			if entries != nil {
				t.Errorf("got entries %v with the error", entries)
			}
		})
	}
}

// TestParseUsersLineLimit checks that lines of exactly maxLine bytes are
// accepted with every line ending.
func TestParseUsersLineLimit(t *testing.T) {
	h := mustHash(t, "pw")
	line := "alice " + h + " #"
	line += strings.Repeat("x", maxLine-len(line))
	for _, end := range []string{"", "\n", "\r\n", "\r"} {
		entries, err := ParseUsers(strings.NewReader(line + end))
		if err != nil || len(entries) != 1 {
			t.Errorf("line ending %q: %d entries, error %v", end, len(entries), err)
		}
	}
}

func TestParseUsersReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := ParseUsers(&errReader{data: "alice " + mustHash(t, "pw") + "\n", err: boom})
	if !errors.Is(err, boom) || err.Error() != "read after line 1: boom" {
		t.Errorf("error %v, want read after line 1: boom", err)
	}
}

type errReader struct {
	data string
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"alice": true, "righthand": true, "a": true, "zoë": true, "名前": true, "a.b-c_d@e": true,
		strings.Repeat("x", 64): true, strings.Repeat("é", 32): true,
		"": false, strings.Repeat("x", 65): false, strings.Repeat("é", 33): false,
		"a b": false, "a\tb": false, "a\u00a0b": false, "a\u2003b": false, "a\nb": false,
		"a|b": false, "a#b": false, "#": false, "|": false,
		"a\x00b": false, "a\x1bb": false, "a\x7fb": false, "a\u0085b": false,
		"\xff": false, "a\xc3": false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "users")
	if err := os.WriteFile(good, []byte(sampleUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	entries, err := LoadFile(good)
	if err != nil || len(entries) != 3 {
		t.Fatalf("LoadFile: %d entries, error %v", len(entries), err)
	}

	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("# x\n\nbob\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadFile(bad)
	if want := "users file " + bad + ": line 3: missing hash after the name"; err == nil || err.Error() != want {
		t.Errorf("LoadFile(bad): %v, want %s", err, want)
	}

	_, err = LoadFile(filepath.Join(dir, "missing"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "users file: open "+dir) {
		t.Errorf("LoadFile(missing): %v", err)
	}
}
