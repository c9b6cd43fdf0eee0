package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/dtcall/dtcall/accounts"
	"github.com/spf13/pflag"
)

// Exit statuses of the user commands.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// legacyParams are the scrypt parameters of the old server's tool:
// N = 2^14, r = 8, p = 16.
var legacyParams = accounts.Params{LogN: 14, R: 8, P: 16}

// reloadHint follows every edit of a users file.
const reloadHint = "to apply it to a running server: kill -HUP <its pid>, or systemctl reload dtoperator"

// userIO is where a user command reads the password and writes. Only
// "user add" without --users writes a hash, to stdout; no command writes
// a password.
type userIO struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// terminal is whether stdin is a terminal (it must then be an
	// *os.File): the password is then asked twice without echo.
	terminal bool
}

// userVerb is one command of "dtoperator user".
type userVerb struct {
	name, args string
	summary    string // for the usage text of all commands
	help       string // for the command's own usage text
	usersHelp  string // usage of --users
	hasName    bool   // takes exactly one NAME
	needsUsers bool   // --users is required
	hashes     bool   // reads a password and takes --cost
	run        func(opts userOptions, uio userIO) error
}

// userVerbs lists the commands in the order of the usage text.
var userVerbs = []userVerb{
	{name: "add", args: "NAME [--users FILE] [--cost default|legacy]",
		summary: "hash a password for NAME: print the users-file line, or add it to FILE",
		help: "Hashes a password read from the terminal (or one line of stdin) for the users file:\n" +
			"prints the line, or with --users adds it to the end of FILE.",
		usersHelp: "add the user to this users `file` (created 0600) instead of printing the line",
		hasName:   true, hashes: true, run: userAdd},
	{name: "passwd", args: "NAME --users FILE [--cost default|legacy]",
		summary: "give NAME in FILE a new password",
		help: "Replaces the hash of NAME in the users file with one of a new password, read from\n" +
			"the terminal (or one line of stdin).",
		usersHelp: "users `file` to edit (required)",
		hasName:   true, needsUsers: true, hashes: true, run: userPasswd},
	{name: "remove", args: "NAME --users FILE",
		summary:   "remove NAME from FILE",
		help:      "Removes the line of NAME from the users file.",
		usersHelp: "users `file` to edit (required)",
		hasName:   true, needsUsers: true, run: userRemove},
	{name: "list", args: "--users FILE",
		summary:    "list the users in FILE and their hash parameters",
		help:       "Prints one line per user of the users file: the name and the scrypt parameters of\nits hash (never the hash).",
		usersHelp:  "users `file` to read (required)",
		needsUsers: true, run: userList},
}

// userOptions are the parsed arguments of a user command.
type userOptions struct {
	name   string // "" for list
	users  string // the users file; "" only for add, which then prints the line
	params accounts.Params
}

// runUser runs "dtoperator user VERB ..." with args being what follows
// "user", and returns the exit status: 0, 1 when the command failed, 2 for
// a usage error. "user" alone or an unknown verb prints the usage text to
// stderr; --help prints it to stdout.
func runUser(args []string, uio userIO) int {
	if len(args) == 0 {
		fmt.Fprintln(uio.stderr, "dtoperator user: missing command")
		printUserUsage(uio.stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		printUserUsage(uio.stdout)
		return exitOK
	}
	for _, v := range userVerbs {
		if v.name == args[0] {
			return runUserVerb(v, args[1:], uio)
		}
	}
	fmt.Fprintf(uio.stderr, "dtoperator user: unknown command %q\n", args[0])
	printUserUsage(uio.stderr)
	return exitUsage
}

// runUserVerb parses args for v and runs it; it returns the exit status.
func runUserVerb(v userVerb, args []string, uio userIO) int {
	opts, err := parseUserArgs(v, args, uio.stdout)
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(uio.stderr, "dtoperator user %s: %v\n", v.name, err)
		return exitUsage
	}
	if err := v.run(opts, uio); err != nil {
		fmt.Fprintf(uio.stderr, "dtoperator user %s: %v\n", v.name, err)
		return exitError
	}
	return exitOK
}

// parseUserArgs parses the arguments of v; on -h it prints v's usage text
// to stdout and returns pflag.ErrHelp.
func parseUserArgs(v userVerb, args []string, stdout io.Writer) (userOptions, error) {
	fs := newUserFlagSet(v)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: dtoperator user %s %s\n\n%s\n\nFlags:\n%s",
				v.name, v.args, v.help, fs.FlagUsages())
		}
		return userOptions{}, err
	}
	opts := userOptions{users: mustGetString(fs, "users"), params: accounts.DefaultParams}
	switch {
	case v.hasName && fs.NArg() != 1:
		return userOptions{}, errors.New("want exactly one NAME (try --help)")
	case !v.hasName && fs.NArg() != 0:
		return userOptions{}, fmt.Errorf("unexpected argument %q (try --help)", fs.Arg(0))
	case v.needsUsers && opts.users == "":
		return userOptions{}, errors.New("--users FILE is required")
	}
	if v.hashes {
		switch cost := mustGetString(fs, "cost"); cost {
		case "default":
		case "legacy":
			opts.params = legacyParams
		default:
			return userOptions{}, fmt.Errorf("--cost %q: want default or legacy", cost)
		}
	}
	if v.hasName {
		opts.name = fs.Arg(0)
		if !accounts.ValidName(opts.name) {
			return userOptions{}, fmt.Errorf("invalid name %q: want 1-64 bytes of UTF-8 "+
				"without white space, control characters, '|' or '#'", opts.name)
		}
	}
	return opts, nil
}

// newUserFlagSet defines the flags of v. It prints nothing itself.
func newUserFlagSet(v userVerb) *pflag.FlagSet {
	fs := pflag.NewFlagSet("user "+v.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	fs.String("users", "", v.usersHelp)
	if v.hashes {
		fs.String("cost", "default", "scrypt cost: default (N=2^15 r=8 p=1) or legacy (the old tool's N=2^14 r=8 p=16)")
	}
	return fs
}

// mustGetString returns the value of a string flag that fs defines.
func mustGetString(fs *pflag.FlagSet, name string) string {
	s, err := fs.GetString(name)
	if err != nil {
		panic(err)
	}
	return s
}

// printUserUsage writes the usage text of "dtoperator user" to w.
func printUserUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage:")
	for _, v := range userVerbs {
		fmt.Fprintf(w, "  dtoperator user %s %s\n        %s\n", v.name, v.args, v.summary)
	}
	fmt.Fprint(w, `
The password is read from the terminal, twice without echo, or else as one
line of stdin. Edits replace FILE atomically and keep its comments, blank
lines, order and mode; a new FILE is created 0600. A running server applies
an edit when it reloads (kill -HUP, or systemctl reload dtoperator).

Flags:
      --users file    the users file
      --cost string   scrypt cost of new hashes: default (N=2^15 r=8 p=1)
                      or legacy (the old tool's N=2^14 r=8 p=16)
  -h, --help          help for a command: dtoperator user add --help
`)
}
