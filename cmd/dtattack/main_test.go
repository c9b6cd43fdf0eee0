package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/dtcall/dtcall/internal/testserver"
)

func TestDispatchListsModes(t *testing.T) {
	var out, errs bytes.Buffer
	if code := dispatch(nil, &out, &errs); code != 2 {
		t.Errorf("no mode: exit %d, want 2", code)
	}
	for name := range modes {
		if !strings.Contains(out.String(), name) {
			t.Errorf("the mode list lacks %s:\n%s", name, out.String())
		}
	}
	if code := dispatch([]string{"no-such-mode"}, &out, &errs); code != 2 {
		t.Errorf("unknown mode: exit %d, want 2", code)
	}
}

// TestGarbageSmallRun runs the garbage mode, small, against an in-process
// server: it must finish, and the legitimate call alongside must work.
func TestGarbageSmallRun(t *testing.T) {
	ts := testserver.Start(t, testserver.Config{})
	var out, errs bytes.Buffer
	code := dispatch([]string{"garbage",
		"--command-port", strconv.Itoa(ts.CommandPort), "--media-port", strconv.Itoa(ts.MediaPort),
		"--quic-port", strconv.Itoa(ts.QUICPort), "--pin", ts.Cert.CertFile,
		"--user-a", "alice", "--password-a", "pw-alice", "--user-b", "bob", "--password-b", "pw-bob",
		"--user-c", "carol", "--password-c", "pw-carol", "--count", "24", "--settle", "0s",
	}, &out, &errs)
	if code != 0 || !strings.Contains(out.String(), "legitimate call: A→B") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errs.String())
	}
	t.Log(out.String())
}
