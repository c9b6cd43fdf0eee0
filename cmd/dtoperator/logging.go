package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/DeRuina/timberjack"
	"github.com/lmittmann/tint"
)

// Log attributes. Each event is one record whose message names the event
// ("login refused", "call started"); these attributes, the columns of the
// old server's log lines, say about whom:
//
//	tag   the subsystem: "login", "call", "media", "tls", "config", ...
//	user  the account name, once known
//	dir   "inbound" (from a client), "outbound" (to a client), "error"
//	      or "system" (the server's own events)
//	peer  the client's IP address
//
// Passwords never go into a record, not even for a refused login. As a
// safety net both outputs replace the value of any attribute named
// password, pass, passwd or secret (any case, at any group depth, or inside
// a group so named) with "[redacted]".
const (
	attrTag  = "tag"
	attrUser = "user"
	attrDir  = "dir"
	attrPeer = "peer"
)

// Log file settings.
const (
	logFileName   = "dtoperator.log"
	logRotation   = 24 * time.Hour // a new file every day, as the old server did
	logKeep       = 30             // rotated files kept
	logDirMode    = 0o750
	logFileMode   = 0o640
	consoleFormat = "2006-01-02 15:04:05.000"
	redacted      = "[redacted]"
)

// newLogger returns a logger writing to console through tint (coloured if
// consoleIsTerminal) and, if logsDir is not "", also as plain text lines to
// logsDir/dtoperator.log, which is rotated every 24 hours. Both drop records
// below level, which may be a *slog.LevelVar to change it while running. It
// creates logsDir if needed. The caller must Close the returned Closer at
// exit to flush and close the file; the logger is safe for concurrent use.
func newLogger(console io.Writer, consoleIsTerminal bool, logsDir string, level slog.Leveler) (*slog.Logger, io.Closer, error) {
	consoleHandler := tint.NewHandler(console, &tint.Options{
		Level:       level,
		ReplaceAttr: redactSecrets,
		TimeFormat:  consoleFormat,
		NoColor:     !consoleIsTerminal,
	})
	if logsDir == "" {
		return slog.New(consoleHandler), nopCloser{}, nil
	}
	file, err := openLogFile(logsDir)
	if err != nil {
		return nil, nil, err
	}
	fileHandler := slog.NewTextHandler(file, &slog.HandlerOptions{
		Level:       level,
		ReplaceAttr: redactSecrets,
	})
	return slog.New(slog.NewMultiHandler(consoleHandler, fileHandler)), file, nil
}

// openLogFile creates logsDir and checks that the log file in it can be
// written, so that a bad folder fails at start and not silently later.
func openLogFile(logsDir string) (*timberjack.Logger, error) {
	if err := os.MkdirAll(logsDir, logDirMode); err != nil {
		return nil, fmt.Errorf("create log folder: %w", err)
	}
	name := filepath.Join(logsDir, logFileName)
	f, err := os.OpenFile(name, os.O_CREATE|os.O_APPEND|os.O_WRONLY, logFileMode)
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	return &timberjack.Logger{
		Filename:         name,
		RotationInterval: logRotation,
		MaxBackups:       logKeep,
		LocalTime:        true,
		FileMode:         logFileMode,
	}, nil
}

// redactSecrets is the ReplaceAttr of both outputs: it hides the value of
// attributes that are, or are inside a group that is, named like a secret.
func redactSecrets(groups []string, a slog.Attr) slog.Attr {
	if isSecretKey(a.Key) || slices.ContainsFunc(groups, isSecretKey) {
		return slog.String(a.Key, redacted)
	}
	return a
}

// isSecretKey reports whether an attribute key names a secret.
func isSecretKey(key string) bool {
	switch strings.ToLower(key) {
	case "password", "pass", "passwd", "secret":
		return true
	}
	return false
}

// nopCloser is the Closer of a logger without a file.
type nopCloser struct{}

// Close does nothing.
func (nopCloser) Close() error { return nil }
