package conffile

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestUnmarshal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want map[string]any
	}{
		{"empty", "", map[string]any{}},
		{"comments and blanks", "# c\n\n   # indented\n\t\n", map[string]any{}},
		{"plain", "command = 1991\nmedia=2014\n", map[string]any{"command": "1991", "media": "2014"}},
		{"no final newline", "command = 1991", map[string]any{"command": "1991"}},
		{"inline comment", "command = 1991  # port\n", map[string]any{"command": "1991"}},
		{"comment without space", "command = 1991#port", map[string]any{"command": "1991"}},
		{"crlf", "command = 1991\r\nmedia = 2014\r\n", map[string]any{"command": "1991", "media": "2014"}},
		{"quoted", `public = "/etc/my cert.pem"`, map[string]any{"public": "/etc/my cert.pem"}},
		{"quoted hash", `ciphers = "a#b" # comment`, map[string]any{"ciphers": "a#b"}},
		{"quoted spaces kept", `x = "  a  "`, map[string]any{"x": "  a  "}},
		{"inner quote unquoted", `x = a"b`, map[string]any{"x": `a"b`}},
		{"empty value", "listen =\n", map[string]any{"listen": ""}},
		{"empty quoted", `listen = ""`, map[string]any{"listen": ""}},
		{"case-insensitive key", "Command = 1\nMEDIA = 2", map[string]any{"command": "1", "media": "2"}},
		{"equals in value", "ciphers = a=b", map[string]any{"ciphers": "a=b"}},
		{"key chars", "a_b-1 = x", map[string]any{"a_b-1": "x"}},
		{"indented", "   command   =   1991   ", map[string]any{"command": "1991"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Legacy{}.Unmarshal([]byte(tt.in))
			if err != nil {
				t.Fatalf("Unmarshal(%q): %v", tt.in, err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("Unmarshal(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestUnmarshalErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"missing equals", "# c\n\n\ncommand 1991\n", `line 4: key "command 1991": missing "="`},
		{"missing equals comment", "command # = 1991", `line 1: key "command": missing "="`},
		{"missing equals bare", "command", `line 1: key "command": missing "="`},
		{"twice", "media = 1\n\nmedia = 2", `line 3: key "media" set twice (first on line 1)`},
		{"twice case", "media = 1\nMedia = 2", `line 2: key "media" set twice (first on line 1)`},
		{"empty key", "x = 1\n = 2", `line 2: missing key before "="`},
		{"space in key", "com mand = 1", `line 1: key "com mand": invalid character ' ' in key`},
		{"dot in key", "a.b = 1", `line 1: key "a.b": invalid character '.' in key`},
		{"unterminated quote", `public = "/etc/x`, `line 1: key "public": missing closing quote`},
		{"text after quote", `public = "a" b`, `line 1: key "public": unexpected text after closing quote`},
		{"crlf line numbers", "a = 1\r\nb\r\n", `line 2: key "b": missing "="`},
		{"long key shortened", strings.Repeat("k", 60), `line 1: key "` + strings.Repeat("k", 40) + `...": missing "="`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Legacy{}.Unmarshal([]byte(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Unmarshal(%q) error = %v, want %s", tt.in, err, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Line == 0 {
				t.Errorf("error %v is not an *Error with a line", err)
			}
		})
	}
}

func TestLines(t *testing.T) {
	t.Parallel()
	in := "# header\ncommand = 1991\r\n\nbroken line\nMedia = x # c\ncommand = 2\n"
	want := map[string]int{"command": 2, "media": 5}
	if got := Lines([]byte(in)); !maps.Equal(got, want) {
		t.Errorf("Lines = %v, want %v", got, want)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	in := map[string]any{
		"command": 1991,
		"ciphers": "a#b",
		"public":  " spaced ",
		"quote":   `a"b`,
		"flag":    true,
		"empty":   "",
	}
	data, err := Legacy{}.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Legacy{}.Unmarshal(data)
	if err != nil {
		t.Fatalf("Unmarshal(Marshal) = %v\n%s", err, data)
	}
	want := map[string]any{"command": "1991", "ciphers": "a#b", "public": " spaced ", "quote": `a"b`, "flag": "true", "empty": ""}
	if !maps.Equal(got, want) {
		t.Errorf("round trip = %v, want %v\n%s", got, want, data)
	}
}

func TestMarshalRefuses(t *testing.T) {
	t.Parallel()
	tests := map[string]map[string]any{
		"nested":              {"a": map[string]any{"b": "c"}},
		"list":                {"a": []any{"b"}},
		"newline":             {"a": "b\nc"},
		"quote and hash":      {"a": `"#`},
		"uppercase key":       {"A": "b"},
		"empty key":           {"": "b"},
		"space in key":        {"a b": "c"},
		"carriage return end": {"a": "b\r\n"},
	}
	for name, in := range tests {
		if _, err := (Legacy{}).Marshal(in); err == nil {
			t.Errorf("%s: Marshal(%v) succeeded", name, in)
		}
	}
}

// TestExample checks that the example config in examples/ parses.
func TestExample(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "dtoperator.conf"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Legacy{}.Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"command", "media", "public", "private", "dhfile", "ciphers", "users", "logs", "listen", "quic", "data", "window"} {
		if _, ok := got[key]; !ok {
			t.Errorf("example lacks key %q", key)
		}
	}
}
