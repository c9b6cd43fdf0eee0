package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/dtcall/dtcall/client"
)

// What several modes share: the legitimate client's pin and log-in, the
// server's memory, and the check-then-run of a mode.

// pinOption sets o's pin from a --pin value: a fingerprint or a PEM file
// (dtcall's --pin forms).
func pinOption(o *client.Options, pin string) {
	if client.IsFingerprint(pin) {
		o.PinSHA256 = pin
		return
	}
	o.PinFile = pin
}

// online dials with o, logs user in and registers media.
func online(ctx context.Context, o client.Options, user, password string) (*client.Client, error) {
	c, err := client.Dial(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := c.Login(ctx, user, password); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.RegisterMedia(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// readVmRSS reads VmRSS from /proc/PID/status, in KiB; 0 on error.
func readVmRSS(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// checkAndRun checks a mode's flags, then runs it, with the exit codes of
// the tool: 2 for flags that do not check, 1 when the run failed.
func checkAndRun(stderr io.Writer, mode string, check, run func() error) int {
	if err := check(); err != nil {
		fmt.Fprintln(stderr, "dtattack "+mode+":", err)
		return 2
	}
	if err := run(); err != nil {
		fmt.Fprintln(stderr, "dtattack "+mode+":", err)
		return 1
	}
	return 0
}
