package main

import (
	"errors"
	"runtime"
	"runtime/debug"
	"strings"
)

// errVersion is returned by loadConfig after --version printed the version;
// the program should then exit with status 0.
var errVersion = errors.New("version printed")

// versionVCS are the build settings that versionLine reports.
var versionVCS = []string{"vcs.revision", "vcs.time", "vcs.modified"}

// versionLine describes the binary that info (from debug.ReadBuildInfo;
// nil if there is none) was read from: "dtoperator v1.2.0
// vcs.revision=abc123 vcs.time=2026-01-02T03:04:05Z vcs.modified=false
// go1.26.8". What the build did not record, such as the VCS settings of a
// build with -buildvcs=false, reads "unknown".
func versionLine(info *debug.BuildInfo) string {
	version, goVersion := "unknown", runtime.Version()
	settings := make(map[string]string)
	if info != nil {
		if info.Main.Version != "" {
			version = info.Main.Version
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
	}
	fields := []string{"dtoperator", version}
	for _, key := range versionVCS {
		value := settings[key]
		if value == "" {
			value = "unknown"
		}
		fields = append(fields, key+"="+value)
	}
	return strings.Join(append(fields, goVersion), " ")
}

// buildInfo returns this binary's build information, or nil.
func buildInfo() *debug.BuildInfo {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return info
}
