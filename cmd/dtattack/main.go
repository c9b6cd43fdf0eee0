// Command dtattack runs the cheap attacks that dtoperator's limits are
// built against, against a server on loopback (or in a network namespace
// of the test's own), and prints what they cost the server and what a
// legitimate client saw meanwhile. docs/RELIABILITY.md records its figures
// and the command lines that produced them.
//
//	dtattack MODE [flags]
//
// Each mode lives in a file of its own and registers itself; "dtattack"
// alone lists them. Every mode is bounded in count and time and stops by
// itself. It sends traffic only to the --server address, which must be a
// loopback address unless --allow-remote is given.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// mode is one attack: its one-line summary and its entry point, which
// parses its own flags from args and returns the exit status.
type mode struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

// modes are the registered attacks, by name.
var modes = map[string]mode{}

// register adds an attack; each mode's file calls it from init.
func register(name, summary string, run func(args []string, stdout, stderr io.Writer) int) {
	if _, dup := modes[name]; dup {
		panic("dtattack: mode registered twice: " + name)
	}
	modes[name] = mode{summary: summary, run: run}
}

func main() { os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr)) }

// dispatch runs the mode args[0] names, or prints the list of modes.
func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	m, ok := modes[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "dtattack: unknown mode %q\n", args[0])
		usage(stderr)
		return 2
	}
	return m.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: dtattack MODE [flags]   (dtattack MODE --help for its flags)\n\nmodes:")
	names := make([]string, 0, len(modes))
	for n := range modes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-20s %s\n", n, modes[n].summary)
	}
}
