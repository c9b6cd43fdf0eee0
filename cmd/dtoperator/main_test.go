package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCaptured runs run(args) with os.Stdout and os.Stderr sent to files
// and returns the exit status and what was written. It swaps process-wide
// files, so the tests that use it must not call t.Parallel (they then run
// before, never beside, the parallel ones).
func runCaptured(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	outFile, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	errFile, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outFile, errFile
	code = run(args)
	os.Stdout, os.Stderr = oldOut, oldErr
	return code, mustRead(t, outFile.Name()), mustRead(t, errFile.Name())
}

func TestRunVersion(t *testing.T) {
	code, stdout, stderr := runCaptured(t, "--version")
	if want := versionLine(buildInfo()) + "\n"; code != 0 || stdout != want || stderr != "" {
		t.Errorf("run --version = %d, stdout %q, stderr %q; want 0, %q", code, stdout, stderr, want)
	}
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string // prefixes
	}{
		{[]string{"--help"}, 0, "Usage:\n", ""},
		{[]string{"user"}, 2, "", "dtoperator user: missing command\nUsage:\n"},
		{[]string{"user", "--help"}, 0, "Usage:\n  dtoperator user add NAME", ""},
		{[]string{"user", "chpass"}, 2, "", "dtoperator user: unknown command \"chpass\"\nUsage:\n"},
		{[]string{"serve"}, 2, "", "dtoperator: unexpected argument \"serve\"\n"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCaptured(t, tt.args...)
		if code != tt.code || !strings.HasPrefix(stdout, tt.stdout) || !strings.HasPrefix(stderr, tt.stderr) ||
			tt.stdout == "" && stdout != "" || tt.stderr == "" && stderr != "" {
			t.Errorf("run %q = %d\nstdout %q\nstderr %q\nwant %d, %q, %q", tt.args, code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
		}
	}
}
