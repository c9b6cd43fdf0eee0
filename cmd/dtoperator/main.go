// Command dtoperator is the dtcall server: it serves the legacy TLS command
// and media ports that deployed Android and Java clients speak.
//
//	dtoperator [-c dtoperator.conf] [--flags]   run the server
//	dtoperator user add NAME [--users FILE]     make a users-file line
//	dtoperator user passwd|remove NAME --users FILE
//	dtoperator user list --users FILE           names and hash parameters
//
// With no arguments it runs on the default ports with the demo accounts and
// a self-signed certificate kept in its data folder.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/dtcall/dtcall/accounts"
)

func main() { os.Exit(run(os.Args[1:])) }

// run is the whole program; it returns the exit status.
func run(args []string) int {
	if len(args) > 0 && args[0] == checkWorkerArg {
		return runCheckWorker()
	}
	if len(args) > 0 && args[0] == "user" {
		return runUser(args[1:], userIO{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, terminal: stdinIsTerminal()})
	}
	environ := os.Environ()
	cfg, warnings, err := loadConfig(args, environ)
	if errors.Is(err, errHelp) || errors.Is(err, errVersion) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dtoperator:", err)
		return 2
	}
	level := new(slog.LevelVar) // a reload may change it
	level.Set(cfg.LogLevel)
	log, closeLog, err := newLogger(os.Stderr, term.IsTerminal(int(os.Stderr.Fd())), cfg.Logs, level)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dtoperator: logs:", err)
		return 2
	}
	defer closeLog.Close()
	for _, w := range warnings {
		log.Warn(w, attrTag, "config", attrDir, "system")
	}

	// SIGHUP reloads; SIGTERM and SIGINT drain, and a second one ends the
	// drain (serve.go).
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	s := &server{args: args, environ: environ, log: log, level: level, cfg: cfg}
	if err := serve(sigs, s); errors.Is(err, errFrontFailed) {
		return 1 // logged; a non-zero status lets systemd restart it
	} else if err != nil {
		log.Error("dtoperator cannot start: "+err.Error(), attrTag, "system", attrDir, "error")
		return 1
	}
	return 0
}

// loadUsers reads the users file, or the embedded demo accounts.
func loadUsers(cfg Config, log *slog.Logger) ([]accounts.Entry, error) {
	if cfg.Users == "" { // loadConfig has warned about it
		return accounts.ParseUsers(bytes.NewReader(demoUsers))
	}
	return accounts.LoadFile(cfg.Users)
}

// certificate returns the configured certificate, or the self-signed one in
// the data folder (made on first run).
func certificate(cfg Config, log *slog.Logger) (certFile, keyFile string, err error) {
	certFile, keyFile = cfg.Public, cfg.Private
	created := false
	if certFile == "" {
		if certFile, keyFile, created, err = ensureCert(cfg.Data); err != nil {
			return "", "", fmt.Errorf("self-signed certificate in %s: %w", cfg.Data, err)
		}
	}
	fp, err := certFingerprint(certFile)
	if err != nil {
		return "", "", err
	}
	spki, spkiBase64, err := spkiFingerprint(certFile)
	if err != nil {
		return "", "", err
	}
	log.Info("certificate: clients pin one of these", attrTag, "tls", attrDir, "system",
		"cert", certFile, "fingerprint", fp, "spki", spki, "spki_base64", spkiBase64,
		"self_signed", cfg.Public == "", "new", created)
	return certFile, keyFile, nil
}
