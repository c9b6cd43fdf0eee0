package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/dtcall/dtcall/accounts"
	"github.com/spf13/pflag"
)

// legacyParams are the scrypt parameters of the old server's tool:
// N = 2^14, r = 8, p = 16.
var legacyParams = accounts.Params{LogN: 14, R: 8, P: 16}

// Exit statuses of runUserAdd.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// runUserAdd runs "dtoperator user add NAME [--users FILE] [--cost
// default|legacy]" with args being what follows "add". It reads the
// password from stdin: prompted twice without echo if stdinIsTerminal (stdin
// must then be an *os.File), else one line. It prints "name hash" to stdout,
// or with --users appends it to FILE (created 0600). It returns the exit
// status and never prints the password.
func runUserAdd(args []string, stdin io.Reader, stdout, stderr io.Writer, stdinIsTerminal bool) int {
	opts, err := parseUserAdd(args, stdout)
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "dtoperator user add: %v\n", err)
		return exitUsage
	}
	if err := userAdd(opts, stdin, stdout, stderr, stdinIsTerminal); err != nil {
		fmt.Fprintf(stderr, "dtoperator user add: %v\n", err)
		return exitError
	}
	return exitOK
}

// userAddOptions are the parsed arguments of "user add".
type userAddOptions struct {
	name   string
	users  string // file to append to; "" = print to stdout
	params accounts.Params
}

// parseUserAdd parses the arguments of "user add"; on -h it prints the
// usage text to stdout and returns pflag.ErrHelp.
func parseUserAdd(args []string, stdout io.Writer) (userAddOptions, error) {
	fs := pflag.NewFlagSet("user add", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	users := fs.String("users", "", "append to this users `file` (created 0600) instead of printing")
	cost := fs.String("cost", "default", "scrypt cost: default (N=2^15 r=8 p=1) or legacy (the old tool's N=2^14 r=8 p=16)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: dtoperator user add NAME [flags]\n\n"+
				"Hashes a password read from the terminal (or one line of stdin) for the users file.\n\nFlags:\n%s",
				fs.FlagUsages())
		}
		return userAddOptions{}, err
	}
	if fs.NArg() != 1 {
		return userAddOptions{}, errors.New("want exactly one NAME (try --help)")
	}
	opts := userAddOptions{name: fs.Arg(0), users: *users}
	switch *cost {
	case "default":
		opts.params = accounts.DefaultParams
	case "legacy":
		opts.params = legacyParams
	default:
		return userAddOptions{}, fmt.Errorf("--cost %q: want default or legacy", *cost)
	}
	if !accounts.ValidName(opts.name) {
		return userAddOptions{}, fmt.Errorf("invalid name %q: want 1-64 bytes of UTF-8 "+
			"without white space, control characters, '|' or '#'", opts.name)
	}
	return opts, nil
}

// userAdd reads the password, hashes it and writes the users file line.
func userAdd(opts userAddOptions, stdin io.Reader, stdout, stderr io.Writer, terminal bool) error {
	if opts.users != "" {
		if err := checkNewName(opts.users, opts.name); err != nil {
			return err
		}
	}
	password, err := readPassword(stdin, stderr, terminal)
	if err != nil {
		return err
	}
	hash, err := accounts.NewHash(password, opts.params)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	line := opts.name + " " + hash + "\n"
	if opts.users == "" {
		_, err := io.WriteString(stdout, line)
		return err
	}
	if err := appendLine(opts.users, line); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "added user %q to %s\n", opts.name, opts.users)
	return nil
}

// checkNewName fails if the users file exists and is broken or already has
// name.
func checkNewName(path, name string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	entries, err := accounts.LoadFile(path)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name == name {
			return fmt.Errorf("users file %s: line %d: user %q already exists", path, e.Line, name)
		}
	}
	return nil
}

// appendLine appends line to the file at path, creating it with mode 0600,
// and first ends an unterminated last line.
func appendLine(path, line string) (err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open users file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close users file: %w", cerr)
		}
	}()
	if needsNewline(f) {
		line = "\n" + line
	}
	if _, err := f.WriteString(line); err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	return nil
}

// needsNewline reports whether f is non-empty and its last byte is not '\n'.
func needsNewline(f *os.File) bool {
	info, err := f.Stat()
	if err != nil || info.Size() == 0 {
		return false
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, info.Size()-1); err != nil {
		return false
	}
	return last[0] != '\n'
}
