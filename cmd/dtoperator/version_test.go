package main

import (
	"bytes"
	"errors"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	t.Parallel()
	full := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/dtcall/dtcall", Version: "v0.0.0-20260102030405-abc123def456+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "-buildmode", Value: "exe"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "abc123def4567890"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	noVCS := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}
	tests := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"everything", full, "dtoperator v0.0.0-20260102030405-abc123def456+dirty vcs.revision=abc123def4567890 " +
			"vcs.time=2026-01-02T03:04:05Z vcs.modified=true go1.26.8"},
		{"-buildvcs=false", noVCS, "dtoperator (devel) vcs.revision=unknown vcs.time=unknown vcs.modified=unknown go1.26.8"},
		{"no build info", nil, "dtoperator unknown vcs.revision=unknown vcs.time=unknown vcs.modified=unknown " + runtime.Version()},
	}
	for _, tt := range tests {
		if got := versionLine(tt.info); got != tt.want {
			t.Errorf("%s: versionLine =\n%q\nwant\n%q", tt.name, got, tt.want)
		}
	}
	// This test binary's own build information.
	got := versionLine(buildInfo())
	if !strings.HasPrefix(got, "dtoperator ") || !strings.HasSuffix(got, " "+runtime.Version()) ||
		!strings.Contains(got, " vcs.revision=") || strings.Count(got, " ") != 5 {
		t.Errorf("versionLine(buildInfo()) = %q", got)
	}
}

func TestLoadConfigVersion(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, _, err := loadConfigTo(&out, []string{"--command", "x", "--version"}, nil)
	if !errors.Is(err, errVersion) {
		t.Errorf("error = %v, want errVersion", err)
	}
	if want := versionLine(buildInfo()) + "\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	if _, _, err := loadConfigTo(&out, []string{"--version=false"}, nil); err == nil || errors.Is(err, errVersion) {
		t.Errorf("--version=false: error = %v, want a usage error", err)
	}
}
