package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"
)

// env is the outside world of one run: output, environment variables and
// the terminal. Tests replace it.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// ask asks a question on the terminal; secret input is not echoed. It
	// is nil when there is no terminal to ask on.
	ask func(prompt string, secret bool) (string, error)
}

// osEnv is the real world: stdin/stdout/stderr and the process
// environment; questions only when stdin is a terminal.
func osEnv() env {
	e := env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		e.ask = func(prompt string, secret bool) (string, error) {
			fmt.Fprint(os.Stderr, prompt)
			if secret {
				b, err := term.ReadPassword(fd)
				fmt.Fprintln(os.Stderr)
				return string(b), err
			}
			line, err := bufio.NewReader(os.Stdin).ReadString('\n')
			return strings.TrimRight(line, "\r\n"), err
		}
	}
	return e
}

// password is DTCALL_PASSWORD, else asked without echo. There is no
// password flag: command lines end up in shell histories and ps.
func (e env) password(user, server string) (string, error) {
	if pw := e.getenv("DTCALL_PASSWORD"); pw != "" {
		return pw, nil
	}
	if e.ask == nil {
		return "", errors.New("no password: set DTCALL_PASSWORD or run dtcall in a terminal")
	}
	return e.ask("Password for "+user+" on "+server+": ", true)
}

// userName is --user, else DTCALL_USER, else asked.
func (e env) userName(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if u := e.getenv("DTCALL_USER"); u != "" {
		return u, nil
	}
	if e.ask == nil {
		return "", errors.New("no user name: give --user NAME or set DTCALL_USER")
	}
	return e.ask("User: ", false)
}

// printer writes lines to an output from several goroutines.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) say(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", a...)
}
