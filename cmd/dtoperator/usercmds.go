package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/dtcall/dtcall/accounts"
)

// userAdd reads the password, hashes it and prints the users-file line
// "name hash", or adds it to the end of opts.users (created 0600 if
// missing). It refuses a name the file already has before asking for the
// password.
func userAdd(opts userOptions, uio userIO) error {
	if opts.users != "" {
		f, err := readUsersFile(opts.users, true)
		if err != nil {
			return err
		}
		if err := f.checkNew(opts.name); err != nil {
			return err
		}
	}
	hash, err := newPasswordHash(opts, uio)
	if err != nil {
		return err
	}
	if opts.users == "" {
		_, err := io.WriteString(uio.stdout, opts.name+" "+hash+"\n")
		return err
	}
	err = editUsersFile(opts.users, true, func(f *usersFile) error { return f.add(opts.name, hash) })
	if err != nil {
		return err
	}
	fmt.Fprintf(uio.stderr, "added user %q to %s\n%s\n", opts.name, opts.users, reloadHint)
	return nil
}

// userPasswd replaces the hash of opts.name in opts.users with one of a new
// password. It refuses a name the file lacks before asking for the
// password.
func userPasswd(opts userOptions, uio userIO) error {
	f, err := readUsersFile(opts.users, false)
	if err != nil {
		return err
	}
	if _, err := f.lookup(opts.name); err != nil {
		return err
	}
	hash, err := newPasswordHash(opts, uio)
	if err != nil {
		return err
	}
	err = editUsersFile(opts.users, false, func(f *usersFile) error { return f.setHash(opts.name, hash) })
	if err != nil {
		return err
	}
	fmt.Fprintf(uio.stderr, "changed the password of user %q in %s\n%s\n", opts.name, opts.users, reloadHint)
	return nil
}

// userRemove removes the line of opts.name from opts.users.
func userRemove(opts userOptions, uio userIO) error {
	err := editUsersFile(opts.users, false, func(f *usersFile) error { return f.remove(opts.name) })
	if err != nil {
		return err
	}
	fmt.Fprintf(uio.stderr, "removed user %q from %s\n%s\n", opts.name, opts.users, reloadHint)
	return nil
}

// newPasswordHash reads the new password as uio says and hashes it with
// opts.params.
func newPasswordHash(opts userOptions, uio userIO) (string, error) {
	password, err := readPassword(uio.stdin, uio.stderr, uio.terminal)
	if err != nil {
		return "", err
	}
	hash, err := accounts.NewHash(password, opts.params)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return hash, nil
}

// userList prints one line per user of opts.users to stdout: the name and
// the hash's scrypt parameters, never the hash.
func userList(opts userOptions, uio userIO) error {
	entries, err := accounts.LoadFile(opts.users)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		fmt.Fprintf(uio.stderr, "users file %s has no accounts\n", opts.users)
		return nil
	}
	tw := tabwriter.NewWriter(uio.stdout, 0, 0, 2, ' ', 0)
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\n", e.Name, describeParams(e.Hash.Params))
	}
	return tw.Flush()
}

// describeParams names scrypt parameters, and whether they are those of
// new hashes or of the old tool: "scrypt N=2^15 r=8 p=1 (new)".
func describeParams(p accounts.Params) string {
	s := fmt.Sprintf("scrypt N=2^%d r=%d p=%d", p.LogN, p.R, p.P)
	switch p {
	case accounts.DefaultParams:
		s += " (new)"
	case legacyParams:
		s += " (old, p=16)"
	}
	return s
}
