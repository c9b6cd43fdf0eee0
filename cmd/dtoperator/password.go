package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// maxPassword bounds a password: a login command, which carries it, is at
// most 1024 bytes.
const maxPassword = 900

// readPassword reads the new password: from the terminal without echo,
// asked twice, if terminal is set and stdin has a file descriptor; else
// one line of stdin.
func readPassword(stdin io.Reader, stderr io.Writer, terminal bool) (string, error) {
	var (
		password string
		err      error
	)
	if f, ok := stdin.(interface{ Fd() uintptr }); terminal && ok {
		fd := int(f.Fd())
		password, err = promptPassword(func() ([]byte, error) { return term.ReadPassword(fd) }, stderr)
	} else {
		password, err = readLine(stdin)
	}
	if err != nil {
		return "", err
	}
	return password, checkPassword(password)
}

// promptPassword asks for the password twice on w, reading each with read,
// and fails if the two differ.
func promptPassword(read func() ([]byte, error), w io.Writer) (string, error) {
	fmt.Fprint(w, "Password: ")
	first, err := read()
	fmt.Fprintln(w)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(w, "Password again: ")
	second, err := read()
	fmt.Fprintln(w)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if !bytes.Equal(first, second) {
		return "", errors.New("the passwords differ")
	}
	return string(first), nil
}

// readLine reads one line of r, without its line ending. It reads at most
// a little more than maxPassword bytes, enough for checkPassword to refuse
// a longer line.
func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxPassword+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	return strings.TrimSuffix(line, "\r"), nil
}

// checkPassword refuses passwords a client could not send.
func checkPassword(p string) error {
	switch {
	case p == "":
		return errors.New("empty password refused")
	case len(p) > maxPassword:
		return fmt.Errorf("password longer than %d bytes", maxPassword)
	case strings.ContainsAny(p, "|\r\n"):
		return errors.New(`password contains '|' or a line break, which the login command can't carry`)
	}
	return nil
}

// stdinIsTerminal reports whether the process's stdin is a terminal.
func stdinIsTerminal() bool {
	return term.IsTerminal(int(os.Stdin.Fd()))
}
