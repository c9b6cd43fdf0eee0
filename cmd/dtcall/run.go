package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/dtcall/dtcall/client"
)

// Exit codes.
const (
	exitOK          = 0   // done: lookup found, call held and ended by either side
	exitError       = 1   // network, certificate or protocol failure, connection lost
	exitUsage       = 2   // bad command line, no password or user name
	exitLogin       = 3   // login refused
	exitNoCall      = 4   // busy, not available, rejected, unanswered, caller gave up; lookup: no such user
	exitDropped     = 5   // the call dropped: the other side, or the server, was lost
	exitInterrupted = 130 // Ctrl-C (a call in progress is hung up first)
)

// cli is one run of dtcall.
type cli struct {
	env  env
	out  *printer // what happens, for the person at the terminal
	errs *printer // what went wrong

	opts      client.Options
	user      string
	play      string        // --play path
	record    string        // --record path
	files     files         // opened by call and answer
	ring      time.Duration // how long a call rings before we give up
	wait      time.Duration // answer: how long to wait for a call; 0 = no limit
	lingerFor time.Duration // after the played file ends, before hanging up
	cmd       string
	args      []string
}

const usageText = `usage: dtcall --server HOST (--pin PIN | --ca FILE|system) [flags] COMMAND

commands:
  login              log in and stay online, printing events (Ctrl-C quits)
  lookup NAME        tell whether account NAME exists
  call NAME          call NAME and hold the call until either side hangs up
  answer             wait for a call, accept it and hold it

Checking the server (--pin or --ca, exactly one):
  --pin FILE           pin the whole certificate, as in FILE (PEM)
  --pin sha256:HEX     pin the whole certificate by its fingerprint (fingerprint= in dtoperator's log)
  --pin spki:HEX       pin its public key (spki=): a certificate renewed with the same key still matches
  --pin sha256/BASE64  the same public-key pin in base64, as HPKP and curl write it (spki_base64=)
  --ca FILE            verify the certificate against the CAs in FILE (PEM) and the server's name
                       (--server, or --server-name NAME)
  --ca system          the same with the system's root CAs

The password comes from DTCALL_PASSWORD or is asked without echo.

flags:
`

// run runs dtcall with args (without the program name) and returns the
// exit code. ctx ending is Ctrl-C.
func run(ctx context.Context, args []string, e env) int {
	c := &cli{env: e, out: &printer{w: e.stdout}, errs: &printer{w: e.stderr}}
	if err := c.parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		c.errs.say("dtcall: %v (dtcall --help for usage)", err)
		return exitUsage
	}
	switch c.cmd {
	case "login":
		return c.login(ctx)
	case "lookup":
		return c.lookup(ctx)
	case "call":
		return c.call(ctx)
	case "answer":
		return c.answer(ctx)
	}
	panic("unreachable: parse checks the command")
}

// parse reads the command line into c.
func (c *cli) parse(args []string) error {
	fs := pflag.NewFlagSet("dtcall", pflag.ContinueOnError)
	fs.SetOutput(c.env.stderr)
	fs.Usage = func() {
		fmt.Fprint(c.env.stderr, usageText)
		fs.PrintDefaults()
	}
	server := fs.String("server", "", "server host name or IP address (required)")
	transport := fs.String("transport", "quic", "quic or tcp (tcp: the legacy TLS pair)")
	datagram := fs.Bool("datagram", false, "QUIC: carry media in QUIC datagrams")
	pin := fs.String("pin", "", "pin the server: `PIN` is its certificate file (PEM), or sha256:HEX, spki:HEX or sha256/BASE64 as dtoperator logs them")
	ca := fs.String("ca", "", "verify the server against the CAs in `FILE` (PEM), or \"system\" for the system's root CAs")
	fs.StringVar(&c.opts.ServerName, "server-name", "", "--ca: the `NAME` the certificate must cover (default --server)")
	user := fs.String("user", "", "user name (default $DTCALL_USER, else asked)")
	fs.IntVar(&c.opts.CommandPort, "command-port", client.DefaultCommandPort, "legacy TCP command port")
	fs.IntVar(&c.opts.MediaPort, "media-port", client.DefaultMediaPort, "legacy TCP media port")
	fs.IntVar(&c.opts.QUICPort, "quic-port", client.DefaultQUICPort, "QUIC UDP port")
	fs.StringVar(&c.opts.LocalAddr, "from", "", "local IP address to connect from")
	fs.BoolVar(&c.opts.TLS12DHEOnly, "android2017", false, "tcp: speak TLS like the 2017 Android app (TLS 1.2, DHE only)")
	fs.DurationVar(&c.opts.Timeout, "timeout", client.DefaultTimeout, "how long to wait for each answer from the server")
	fs.StringVar(&c.play, "play", "", "call/answer: send FILE as media, 32-byte frames at 50 per second; hang up at its end")
	fs.StringVar(&c.record, "record", "", "call/answer: write the media that arrives to FILE")
	fs.DurationVar(&c.ring, "ring", 20*time.Second, "call: give up when unanswered this long")
	fs.DurationVar(&c.wait, "wait", 0, "answer: give up when no call comes this long (0: wait until Ctrl-C)")
	fs.DurationVar(&c.lingerFor, "linger", 500*time.Millisecond, "call/answer with --play: wait this long after the file ends, for the last media to arrive, before hanging up")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return errors.New("no command: login, lookup, call or answer")
	}
	c.cmd, c.args = rest[0], rest[1:]
	want := map[string]int{"login": 0, "lookup": 1, "call": 1, "answer": 0}
	n, ok := want[c.cmd]
	switch {
	case !ok:
		return fmt.Errorf("unknown command %q", c.cmd)
	case len(c.args) != n:
		return fmt.Errorf("%s takes %d argument(s), got %d", c.cmd, n, len(c.args))
	case (c.play != "" || c.record != "") && c.cmd != "call" && c.cmd != "answer":
		return errors.New("--play and --record go with call and answer")
	case *server == "":
		return errors.New("--server is required")
	}
	c.opts.Server = *server
	if err := c.check(*pin, *ca); err != nil {
		return err
	}
	switch {
	case *transport == "tcp" && *datagram:
		return errors.New("--datagram needs --transport quic")
	case *transport == "tcp":
		c.opts.Transport = client.TCP
	case *transport == "quic" && *datagram:
		c.opts.Transport = client.QUICDatagram
	case *transport == "quic":
		c.opts.Transport = client.QUIC
	default:
		return fmt.Errorf("--transport %q: want quic or tcp", *transport)
	}
	var err error
	c.user, err = c.env.userName(*user)
	return err
}

// check sets how the server's certificate is checked: --pin (a file, or a
// fingerprint in one of the forms dtoperator logs) or --ca.
func (c *cli) check(pin, ca string) error {
	switch {
	case pin != "" && ca != "":
		return errors.New("--pin and --ca exclude each other: pin the server, or verify it with a CA")
	case pin == "" && ca == "":
		return errors.New("--pin or --ca is required: the server's certificate file or fingerprint, or a CA file (or system)")
	case pin != "" && c.opts.ServerName != "":
		return errors.New("--server-name goes with --ca (a pin checks no name)")
	case ca == "system":
		c.opts.SystemRoots = true
	case ca != "":
		c.opts.CAFile = ca
	case client.IsFingerprint(pin):
		c.opts.PinSHA256 = pin
	default:
		c.opts.PinFile = pin
	}
	return nil
}

// connect dials, logs in and, with media, registers it. On failure it
// prints why and returns the exit code.
func (c *cli) connect(ctx context.Context, media bool) (*client.Client, int) {
	pw, err := c.env.password(c.user, c.opts.Server)
	if err != nil {
		c.errs.say("dtcall: %v", err)
		return nil, exitUsage
	}
	cl, err := client.Dial(ctx, c.opts)
	if err != nil {
		return nil, c.failed(ctx, "connect to "+c.opts.Server, err)
	}
	if err := cl.Login(ctx, c.user, pw); err != nil {
		cl.Close()
		return nil, c.failed(ctx, "login", err)
	}
	if media {
		if err := cl.RegisterMedia(ctx); err != nil {
			cl.Close()
			return nil, c.failed(ctx, "media", err)
		}
	}
	c.out.say("logged in as %s on %s (%s)", c.user, c.opts.Server, c.opts.Transport)
	return cl, exitOK
}

// failed prints err and returns its exit code.
func (c *cli) failed(ctx context.Context, what string, err error) int {
	var re *client.RefusedError
	switch {
	case ctx.Err() != nil:
		c.errs.say("interrupted")
		return exitInterrupted
	case errors.As(err, &re) && re.Command == "login":
		c.errs.say("%v", err)
		return exitLogin
	}
	c.errs.say("dtcall: %s: %v", what, err)
	return exitError
}

// lost reports a command channel that ended under us.
func (c *cli) lost(cl *client.Client) int {
	c.errs.say("dtcall: lost the connection to the server: %v", cl.Err())
	return exitError
}

func (c *cli) login(ctx context.Context) int {
	cl, code := c.connect(ctx, true)
	if cl == nil {
		return code
	}
	defer cl.Close()
	c.out.say("online; printing events (Ctrl-C quits)")
	for {
		select {
		case <-ctx.Done():
			return exitOK
		case ev, ok := <-cl.Events():
			if !ok {
				return c.lost(cl)
			}
			c.out.say("%s", describe(ev))
		}
	}
}

// describe says an event in words.
func describe(ev client.Event) string {
	switch ev.Kind {
	case client.Incoming:
		return ev.Peer + " is calling (this session does not answer; use dtcall answer)"
	case client.Started:
		return "the call with " + ev.Peer + " is up"
	case client.Rejected:
		return ev.Peer + " rejected the call"
	case client.Ended:
		return ev.Peer + " hung up"
	case client.TimedOut:
		return ev.Peer + " gave up calling"
	case client.Dropped:
		return "the call dropped (the other side lost its connection)"
	}
	return ev.String()
}

func (c *cli) lookup(ctx context.Context) int {
	cl, code := c.connect(ctx, false)
	if cl == nil {
		return code
	}
	defer cl.Close()
	name := c.args[0]
	ok, err := cl.Lookup(ctx, name)
	if err != nil {
		return c.failed(ctx, "lookup", err)
	}
	if !ok {
		c.out.say("%s does not exist", name)
		return exitNoCall
	}
	c.out.say("%s exists", name)
	return exitOK
}
