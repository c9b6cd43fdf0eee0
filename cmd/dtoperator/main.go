package main

import (
	"errors"
	"fmt"
	"os"
)

// Temporary stand-in: the lead replaces this file with the real server
// wiring. It only dispatches "user add" and prints the loaded config.
func main() { os.Exit(run(os.Args[1:])) }

// run is the temporary entry point; it returns the exit status.
func run(args []string) int {
	if len(args) >= 2 && args[0] == "user" && args[1] == "add" {
		return runUserAdd(args[2:], os.Stdin, os.Stdout, os.Stderr, stdinIsTerminal())
	}
	cfg, warnings, err := loadConfig(args, os.Environ())
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dtoperator:", err)
		return 2
	}
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, "dtoperator: warning:", w)
	}
	fmt.Printf("%+v\n", cfg)
	return 0
}
