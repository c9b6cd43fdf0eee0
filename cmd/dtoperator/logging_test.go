package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newTestLogger returns a logger writing to a buffer and a log folder, and
// a function that closes it and returns the console and file output.
func newTestLogger(t *testing.T, terminal bool, level slog.Leveler) (*slog.Logger, func() (console, file string)) {
	t.Helper()
	var console bytes.Buffer
	dir := filepath.Join(t.TempDir(), "logs")
	log, closer, err := newLogger(&console, terminal, dir, level)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closer.Close() })
	return log, func() (string, string) {
		if err := closer.Close(); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, logFileName))
		if err != nil {
			t.Fatal(err)
		}
		return console.String(), string(data)
	}
}

func TestLoggerFanOut(t *testing.T) {
	t.Parallel()
	log, done := newTestLogger(t, false, slog.LevelInfo)
	conn := log.With(attrTag, "login", attrPeer, "192.0.2.7").WithGroup("sess").With("id", 42)
	conn.Info("login ok", attrUser, "righthand", attrDir, "inbound")
	log.Debug("hidden detail")
	log.WithGroup("").Warn("two\nlines", "note", "a\nb")
	console, file := done()
	for _, want := range []string{"tag=login", "peer=192.0.2.7", "sess.id=42", "sess.user=righthand", "sess.dir=inbound", "login ok"} {
		if !strings.Contains(console, want) {
			t.Errorf("console lacks %q:\n%s", want, console)
		}
		if !strings.Contains(file, want) {
			t.Errorf("file lacks %q:\n%s", want, file)
		}
	}
	if strings.Contains(console+file, "hidden detail") {
		t.Error("debug record logged at info level")
	}
	if n := strings.Count(file, "\n"); n != 2 {
		t.Errorf("file has %d lines, want 2 (one per event):\n%s", n, file)
	}
	if strings.Contains(console, "\x1b[") {
		t.Errorf("colour on a non-terminal console: %q", console)
	}
	if !strings.HasPrefix(file, "time=") || !strings.Contains(file, "level=INFO") {
		t.Errorf("file is not slog text:\n%s", file)
	}
}

func TestLoggerColour(t *testing.T) {
	t.Parallel()
	var console bytes.Buffer
	log, closer, err := newLogger(&console, true, "", slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	log.Debug("shown", attrTag, "tls")
	if !strings.Contains(console.String(), "\x1b[") || !strings.Contains(console.String(), "shown") {
		t.Errorf("console = %q, want coloured debug record", console.String())
	}
}

func TestLoggerRedactsPasswords(t *testing.T) {
	t.Parallel()
	log, done := newTestLogger(t, false, slog.LevelInfo)
	const pw = "hunter2-unlucky"
	log.Info("login refused", "password", pw, attrUser, "righthand")
	log.With("PassWd", pw).Info("with")
	log.WithGroup("req").Info("group", "Pass", pw, slog.Group("inner", "SECRET", pw))
	log.Info("nested", slog.Group("password", "value", pw))
	log.WithGroup("secret").Info("group named secret", "value", pw)
	console, file := done()
	for name, out := range map[string]string{"console": console, "file": file} {
		if strings.Contains(out, pw) {
			t.Errorf("%s output contains the password:\n%s", name, out)
		}
		if n := strings.Count(out, redacted); n != 6 {
			t.Errorf("%s output has %d %q, want 6:\n%s", name, n, redacted, out)
		}
		if !strings.Contains(out, "user=righthand") {
			t.Errorf("%s output lost a normal attribute:\n%s", name, out)
		}
	}
}

// TestLoggerLevelVar checks that both outputs follow a level changed while
// the logger runs, as a reload of log_level does.
func TestLoggerLevelVar(t *testing.T) {
	t.Parallel()
	var level slog.LevelVar
	level.Set(slog.LevelWarn)
	log, done := newTestLogger(t, false, &level)
	log.Info("dropped at warn")
	level.Set(slog.LevelDebug)
	log.Debug("kept at debug")
	console, file := done()
	for name, out := range map[string]string{"console": console, "file": file} {
		if strings.Contains(out, "dropped at warn") || !strings.Contains(out, "kept at debug") {
			t.Errorf("%s output does not follow the level:\n%s", name, out)
		}
	}
}

func TestLoggerFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "logs")
	log, closer, err := newLogger(&bytes.Buffer{}, false, dir, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("started")
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	checkMode(t, dir, os.ModeDir|logDirMode)
	checkMode(t, filepath.Join(dir, logFileName), logFileMode)
}

// checkMode fails unless path has mode want (minus the umask's bits).
func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode(); got&^want != 0 || got&0o700 != want&0o700 {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

func TestLoggerBadFolder(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := newLogger(&bytes.Buffer{}, false, file, slog.LevelInfo); err == nil {
		t.Fatal("newLogger with a file as log folder succeeded")
	}
}
