package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dtcall/dtcall/accounts"
)

// loadParams are the cheap scrypt parameters of load accounts (16
// iterations' worth of memory, about 2 KiB): the server reads the
// parameters from each hash, so these log in in microseconds.
var loadParams = accounts.Params{LogN: 4, R: 8, P: 1}

// account is a user name and its password, one line of an accounts file.
type account struct{ name, password string }

// makeAccounts makes count accounts prefix0001.. with random passwords.
func makeAccounts(prefix string, count int) ([]account, error) {
	width := max(4, len(fmt.Sprint(count)))
	as := make([]account, count)
	for i := range as {
		var pw [12]byte
		if _, err := rand.Read(pw[:]); err != nil {
			return nil, err
		}
		as[i] = account{name: fmt.Sprintf("%s%0*d", prefix, width, i+1), password: hex.EncodeToString(pw[:])}
		if !accounts.ValidName(as[i].name) {
			return nil, fmt.Errorf("%q is not a valid account name", as[i].name)
		}
	}
	return as, nil
}

// writeUsers writes the users file (name and hash) for as.
func writeUsers(w io.Writer, as []account) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "# load accounts made by dtload users; cheap scrypt (N=16, r=8, p=1): for load tests only")
	for _, a := range as {
		h, err := accounts.NewHash(a.password, loadParams)
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "%s %s\n", a.name, h)
	}
	return bw.Flush()
}

// writeAccounts writes the accounts file: "name password" per line.
func writeAccounts(w io.Writer, as []account) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "# dtload accounts: name password")
	for _, a := range as {
		fmt.Fprintf(bw, "%s %s\n", a.name, a.password)
	}
	return bw.Flush()
}

// readAccounts reads an accounts file: "name password" per line, blank
// lines and "#" comment lines skipped.
func readAccounts(r io.Reader) ([]account, error) {
	var as []account
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"name password\"", n)
		}
		as = append(as, account{name: f[0], password: f[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, errors.New("no accounts")
	}
	return as, nil
}

func loadAccounts(path string) ([]account, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	as, err := readAccounts(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return as, nil
}

// accountsPath is where "dtload users --out FILE" puts the accounts file.
func accountsPath(usersPath string) string { return usersPath + ".accounts" }

// writeFiles writes the users file at path (0600) and the accounts file
// next to it.
func writeFiles(path string, as []account) error {
	for _, f := range []struct {
		path  string
		write func(io.Writer, []account) error
	}{{path, writeUsers}, {accountsPath(path), writeAccounts}} {
		out, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if err := f.write(out, as); err != nil {
			out.Close()
			return fmt.Errorf("write %s: %w", f.path, err)
		}
		if err := out.Close(); err != nil {
			return err
		}
	}
	return nil
}
