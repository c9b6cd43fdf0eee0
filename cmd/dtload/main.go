package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/dtcall/dtcall/client"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1 // an error, or calls failed
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := mainArgs(ctx, os.Args[1:], os.Stdout, os.Stderr, term.IsTerminal(int(os.Stderr.Fd())))
	stop()
	os.Exit(code)
}

const usageText = `usage: dtload COMMAND [flags]

commands:
  users     write a users file of cheap load accounts and its accounts file
  run       drive N concurrent calls against a dtcall server (or the baseline)
  baseline  serve the baseline forwarder (the yardstick)
  idle      log N users in and hold them idle: logins/s and server memory per user

dtload COMMAND --help shows the flags of COMMAND.
`

// mainArgs runs dtload with args (without the program name) and returns
// the exit code. ctx ending is Ctrl-C. tty says stderr is a terminal.
func mainArgs(ctx context.Context, args []string, stdout, stderr io.Writer, tty bool) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "users":
		err = usersCmd(args[1:], stdout)
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr, tty)
	case "baseline":
		err = baselineCmd(ctx, args[1:], stdout)
	case "idle":
		err = idleCmd(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		err = usageError{fmt.Errorf("unknown command %q", args[0])}
	}
	return exitCode(err, stderr)
}

// usageError is a bad command line.
type usageError struct{ error }

func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, pflag.ErrHelp):
		return exitOK
	case errors.Is(err, errInterrupted):
		fmt.Fprintf(stderr, "dtload: %v\n", err)
		return exitInterrupted
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "dtload: %v (dtload --help for usage)\n", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "dtload: %v\n", err)
	return exitFailed
}

func newFlags(name string, out io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("dtload "+name, pflag.ContinueOnError)
	fs.SetOutput(out)
	fs.SortFlags = false
	return fs
}

func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func usersCmd(args []string, stdout io.Writer) error {
	fs := newFlags("users", stdout)
	count := fs.Int("count", 100, "number of accounts")
	out := fs.String("out", "", "users file to write (for dtoperator --users); the accounts file goes to FILE.accounts")
	prefix := fs.String("prefix", "load", "account name prefix")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || *count < 1 {
		return usageError{errors.New("need --out FILE and --count >= 1")}
	}
	as, err := makeAccounts(*prefix, *count)
	if err != nil {
		return err
	}
	if err := writeFiles(*out, as); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d accounts: users file %s (for dtoperator --users), accounts file %s (for dtload run --accounts)\n",
		len(as), *out, accountsPath(*out))
	return nil
}

func baselineCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("baseline", stdout)
	listen := fs.String("listen", "127.0.0.1", "address to listen on")
	cert := fs.String("cert", "", "PEM certificate (e.g. dtoperator's cert.pem)")
	key := fs.String("key", "", "PEM private key")
	command := fs.Int("command", 1991, "TCP port of the TLS forwarder")
	quic := fs.Int("quic", 0, "UDP port of the QUIC forwarder (default: the --command port)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *cert == "" || *key == "" {
		return usageError{errors.New("need --cert and --key")}
	}
	if *quic == 0 {
		*quic = *command
	}
	kp, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		return err
	}
	f, err := startForwarder(net.JoinHostPort(*listen, strconv.Itoa(*command)), net.JoinHostPort(*listen, strconv.Itoa(*quic)), kp)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "dtload baseline: TLS on %s, QUIC on %s, pin sha256:%x; Ctrl-C stops\n",
		f.tcpLn.Addr(), f.quicLn.Addr(), sha256.Sum256(kp.Certificate[0]))
	<-ctx.Done()
	f.Close()
	return nil
}

// runFlags are the flags of dtload run.
type runFlags struct {
	cfg                 runConfig
	transport, accounts string
	jsonOut             string
	quiet               bool
	findMax             bool
	start, limit, prec  int
	runs                int // --runs: runs per find-max step
	crit                criterion
	pause               time.Duration
	wait                time.Duration
	servers             []string // --server, each a list
	pids                string   // --server-pid
}

// target joins the --server values into cfg.server and parses
// --server-pid: shared by run and idle.
func (f *runFlags) target() error {
	c := &f.cfg
	c.server = strings.Join(f.servers, ",")
	if c.quic == 0 {
		c.quic = c.commandPort
	}
	nodes, err := parseNodes(c.server, c.commandPort, c.mediaPort, c.quic)
	if err != nil {
		return usageError{err}
	}
	c.nodes = nodes
	if c.serverPIDs, err = parsePIDs(f.pids); err != nil {
		return usageError{err}
	}
	return nil
}

// defineTarget defines the flags that say which server to reach and as
// whom: shared by run and idle.
func (f *runFlags) defineTarget(fs *pflag.FlagSet) {
	c := &f.cfg
	fs.StringArrayVar(&f.servers, "server", nil, "server address, given explicitly (e.g. 127.0.0.1); several nodes: "+
		"HOST,HOST2 or the flag repeated, each HOST or HOST:COMMAND:MEDIA:QUIC; clients are spread over them round-robin")
	fs.IntVar(&c.commandPort, "command", 1991, "legacy command port (baseline: the TLS port)")
	fs.IntVar(&c.mediaPort, "media", 2014, "legacy media port")
	fs.IntVar(&c.quic, "quic", 0, "QUIC port (default: the --command port)")
	fs.StringVar(&c.pin, "pin", "", pinHelp)
	fs.DurationVar(&f.wait, "wait", defaultWait, "wait up to this long for the --pin FILE to appear (a starting dtoperator writes it) and then for the server to answer; 0: no wait")
	fs.StringVar(&f.accounts, "accounts", "", "accounts file (name password per line), from dtload users")
	fs.StringVar(&f.pids, "server-pid", "", "report this process's CPU and RSS; PID,PID2,...: their sums (one per node)")
}

// checkPin checks --pin's syntax; a file is read later.
func (f *runFlags) checkPin() error {
	if f.cfg.pin == "" {
		return usageError{errors.New(pinUsage)}
	}
	if _, err := parsePin(f.cfg.pin); err != nil {
		return usageError{err}
	}
	return nil
}

// await waits, within --wait, for a server that is starting: for the
// certificate file of --pin to appear and, if it had to wait, for the
// server to answer a dial over kind (not for the baseline, which pairs
// every connection it accepts). See awaitServer.
func (f *runFlags) await(ctx context.Context, kind client.Transport, stderr io.Writer) error {
	c := &f.cfg
	p, err := parsePin(c.pin)
	if err != nil {
		return usageError{err}
	}
	var probe *client.Options
	if !c.baseline {
		o := c.clientOptions()
		o.Transport = kind
		probe = &o
	}
	if err := awaitServer(ctx, p, f.wait, probe, stderr); err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	return nil
}

// errInterrupted is Ctrl-C before anything ran.
var errInterrupted = errors.New("interrupted")

func (f *runFlags) define(fs *pflag.FlagSet) {
	c := &f.cfg
	f.defineTarget(fs)
	fs.IntVar(&c.calls, "calls", 10, "concurrent calls (2 clients each)")
	fs.StringVar(&f.transport, "transport", "tcp", "tcp, quic, datagram or mixed, for both sides")
	fs.StringVar(&c.callerT, "caller-transport", "", "callers' transport (overrides --transport)")
	fs.StringVar(&c.calleeT, "callee-transport", "", "callees' transport (overrides --transport)")
	fs.DurationVar(&c.ramp, "ramp", 5*time.Second, "calls start evenly spread over this time")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "media time after the ramp (per find-max step)")
	fs.IntVar(&c.frame, "frame", 32, "bytes per media frame")
	fs.IntVar(&c.rate, "rate", 50, "frames per second, each way")
	fs.StringVar(&f.jsonOut, "json", "", "write the JSON report to FILE")
	fs.BoolVar(&c.baseline, "baseline", false, "drive the baseline forwarder (dtload baseline): no login or signalling")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "no progress display")
	fs.BoolVar(&f.findMax, "find-max", false, "search the largest call count meeting the criterion")
	fs.IntVar(&f.start, "start", 10, "find-max: first call count (doubled until a step fails)")
	fs.IntVar(&f.limit, "max-calls", 0, "find-max: largest count to try (default: accounts/2, or 2000 for the baseline)")
	fs.IntVar(&f.prec, "precision", 0, "find-max: stop bisecting at this gap (default 5 % of the last good count)")
	fs.DurationVar(&f.crit.maxP99, "max-p99", 50*time.Millisecond, "find-max: one-way latency p99 must stay below this")
	fs.Float64Var(&f.crit.maxLoss, "max-loss", 0.1, "find-max: loss in % must stay below this")
	fs.IntVar(&f.crit.maxFailed, "max-failed", 0, "find-max: failed calls allowed per step")
	fs.IntVar(&f.runs, "runs", 3, "find-max: runs per step; a step passes when a majority passes (2 of 3); 1 decides on one run")
	fs.DurationVar(&f.pause, "pause", 2*time.Second, "find-max: pause between steps")
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer, tty bool) int {
	fs := newFlags("run", stderr)
	var f runFlags
	f.define(fs)
	if err := parse(fs, args); err != nil {
		return exitCode(err, stderr)
	}
	if err := f.finish(tty, stderr); err != nil {
		return exitCode(err, stderr)
	}
	kind, mixed, _ := parseTransport(f.cfg.callerT) // checked by finish
	if mixed {
		kind = transportKinds[0] // the first caller's
	}
	if err := f.await(ctx, kind, stderr); err != nil {
		return exitCode(err, stderr)
	}
	if f.findMax {
		return f.runFindMax(ctx, stdout, stderr)
	}
	rep, err := run(ctx, f.cfg)
	if err != nil {
		return exitCode(err, stderr)
	}
	rep.writeSummary(stdout)
	rep.writeFailures(stderr)
	if f.jsonOut != "" {
		if err := writeJSON(f.jsonOut, rep); err != nil {
			return exitCode(err, stderr)
		}
	}
	switch {
	case rep.Interrupted:
		return exitInterrupted
	case rep.CallsFailed > 0:
		return exitFailed
	}
	return exitOK
}

// finish fills defaults that depend on other flags and reads the accounts.
func (f *runFlags) finish(tty bool, stderr io.Writer) error {
	c := &f.cfg
	if err := f.target(); err != nil {
		return err
	}
	if c.callerT == "" {
		c.callerT = f.transport
	}
	if c.calleeT == "" {
		c.calleeT = f.transport
	}
	if err := f.checkPin(); err != nil {
		return err
	}
	if !f.quiet {
		c.progress, c.tty = stderr, tty
	}
	if !c.baseline {
		if f.accounts == "" {
			return usageError{errors.New("need --accounts FILE (dtload users writes one)")}
		}
		as, err := loadAccounts(f.accounts)
		if err != nil {
			return err
		}
		c.accts = as
	}
	if f.limit == 0 {
		f.limit = len(c.accts) / 2
		if c.baseline {
			f.limit = 2000
		}
	}
	if f.runs < 1 {
		return usageError{fmt.Errorf("--runs %d: a find-max step needs at least 1 run", f.runs)}
	}
	if err := c.check(); err != nil && !(f.findMax && c.calls > len(c.accts)/2) {
		return usageError{err}
	}
	return nil
}

func (f *runFlags) runFindMax(ctx context.Context, stdout, stderr io.Writer) int {
	s := &search{
		start: f.start, limit: f.limit, precision: f.prec, crit: f.crit, runs: f.runs,
		logf: func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) },
	}
	first := true
	s.measure = func(ctx context.Context, n int) (*Report, error) {
		if !first && !sleepUntil(ctx, time.Now().Add(f.pause)) {
			return &Report{Interrupted: true}, nil
		}
		first = false
		cfg := f.cfg
		cfg.calls = n
		rep, err := run(ctx, cfg)
		if err == nil && ctx.Err() != nil {
			rep.Interrupted = true
		}
		return rep, err
	}
	res, err := s.run(ctx)
	if err != nil {
		return exitCode(err, stderr)
	}
	mode := "dtcall"
	if f.cfg.baseline {
		mode = "baseline"
	}
	switch {
	case res.Limited:
		fmt.Fprintf(stdout, "find-max %s %s/%s: %d calls meet the criterion (the limit; the true max may be higher)\n", mode, f.cfg.callerT, f.cfg.calleeT, res.Max)
	default:
		fmt.Fprintf(stdout, "find-max %s %s/%s: max %d calls meet p99 < %v, loss < %g %%, failed <= %d (first bad: %d)\n",
			mode, f.cfg.callerT, f.cfg.calleeT, res.Max, f.crit.maxP99, f.crit.maxLoss, f.crit.maxFailed, res.FirstBad)
	}
	for _, st := range res.Steps {
		if st.Calls == res.Max && st.Report != nil {
			st.Report.writeSummary(stdout)
		}
	}
	if f.jsonOut != "" {
		if err := writeJSON(f.jsonOut, res); err != nil {
			return exitCode(err, stderr)
		}
	}
	if res.Interrupted {
		fmt.Fprintln(stdout, "find-max: interrupted")
		return exitInterrupted
	}
	if res.Max == 0 {
		fmt.Fprintf(stderr, "dtload: find-max: no call count met the criterion\n")
		if st := res.smallestBad(); st != nil && st.Report != nil {
			st.Report.writeFailures(stderr)
		}
		return exitFailed
	}
	return exitOK
}
