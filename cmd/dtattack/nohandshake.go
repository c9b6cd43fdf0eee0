package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtcall/dtcall/client"
)

func init() {
	register("no-handshake", "legacy ports: N connections from many addresses that never shake hands; "+
		"times a legitimate dial+TLS+login meanwhile and counts when the server closes them", runNoHandshake)
}

// noHandshake is the no-handshake mode's flags.
type noHandshake struct {
	target   legacyTarget
	conns    int
	sources  int
	sendByte bool
	hold     time.Duration
	deadline time.Duration
	every    time.Duration
	user     string
	password string
	pin      string
	dhe      bool
}

func runNoHandshake(args []string, stdout, stderr io.Writer) int {
	var m noHandshake
	fs := flag.NewFlagSet("no-handshake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	m.target.flags(fs)
	fs.IntVar(&m.conns, "conns", 5000, "attack connections, half to the command port, half to the media port (at most 60000)")
	fs.IntVar(&m.sources, "sources", 1000, "distinct source addresses (127.1.0.1 on) the connections come from")
	fs.BoolVar(&m.sendByte, "send-byte", false, "send one byte (a TLS handshake record's type) on each connection, then nothing")
	fs.DurationVar(&m.hold, "hold", 15*time.Second, "how long to hold the connections, and watch, once all are open (at most 2m)")
	fs.DurationVar(&m.deadline, "deadline", 10*time.Second, "the server's handshake deadline, for the report")
	fs.DurationVar(&m.every, "every", time.Second, "time a legitimate dial+TLS+login this often")
	fs.StringVar(&m.user, "user", "", "legitimate user to log in as (required)")
	fs.StringVar(&m.password, "password", "", "its password (required; use a throwaway account)")
	fs.StringVar(&m.pin, "pin", "", "server certificate: PEM file or sha256:HEX (required)")
	fs.BoolVar(&m.dhe, "dhe", false, "legitimate client offers only DHE, like the 2017 Android app")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	return checkAndRun(stderr, "no-handshake", m.check, func() error { return m.run(stdout) })
}

func (m *noHandshake) check() error {
	switch {
	case m.user == "" || m.password == "" || m.pin == "":
		return errors.New("need --user, --password and --pin")
	case m.conns < 1 || m.conns > 60000:
		return errors.New("--conns must be 1..60000")
	case m.sources < 1 || m.sources > maxAttackSources:
		return fmt.Errorf("--sources must be 1..%d", maxAttackSources)
	case m.hold <= 0 || m.hold > 2*time.Minute:
		return errors.New("--hold must be above 0 and at most 2m")
	case m.every < 100*time.Millisecond:
		return errors.New("--every must be at least 100ms")
	}
	return m.target.check()
}

// run opens the connections, times logins while they are held, and reports.
func (m *noHandshake) run(stdout io.Writer) error {
	m.login() // warm-up: the first handshake of a process is slow
	base, err := m.login()
	if err != nil {
		return fmt.Errorf("legitimate login before the attack: %w", err)
	}
	fmt.Fprintf(stdout, "no-handshake: legitimate dial+TLS+login before the attack: %v (dhe=%v)\n", roundDur(base), m.dhe)
	// The hold starts once every connection is open, so that each is
	// watched for at least m.hold; opening is bounded by m.hold too.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	openBound := time.AfterFunc(m.hold, cancel)
	var lives lifetimes
	var wg sync.WaitGroup
	start := time.Now()
	opened, failed := m.open(ctx, &wg, &lives)
	if openBound.Stop() {
		time.AfterFunc(m.hold, cancel)
	}
	fmt.Fprintf(stdout, "no-handshake: %d connections opened (%d failed) from %d sources to ports %d and %d in %v\n",
		opened, failed, min(m.sources, m.conns), m.target.command, m.target.media, roundDur(time.Since(start)))
	if failed > 0 {
		fmt.Fprintln(stdout, "  (failed dials: "+lives.firstErr()+"; check ulimit -n)")
	}
	logins := m.timeLogins(ctx)
	wg.Wait()
	m.report(stdout, logins, &lives, opened)
	return nil
}

// open dials the attack connections from many goroutines; each connection
// is then watched by a goroutine of its own until the server closes it or
// ctx ends.
func (m *noHandshake) open(ctx context.Context, wg *sync.WaitGroup, lives *lifetimes) (opened, failed int) {
	var ok, bad atomic.Int64
	next := make(chan int)
	var dialers sync.WaitGroup
	for range 64 {
		dialers.Go(func() {
			for i := range next {
				port := m.target.command
				if i%2 == 1 {
					port = m.target.media
				}
				c, err := m.target.dialFrom(attackSource(i%m.sources), port)
				if err != nil {
					bad.Add(1)
					lives.fail(err)
					continue
				}
				ok.Add(1)
				opened := time.Now()
				if m.sendByte {
					c.Write([]byte{0x16})
				}
				wg.Go(func() { lives.watch(ctx, c, opened) })
			}
		})
	}
	for i := range m.conns {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	dialers.Wait()
	return int(ok.Load()), int(bad.Load())
}

// timeLogins logs in every m.every until ctx ends.
func (m *noHandshake) timeLogins(ctx context.Context) []timing {
	var out []timing
	tick := time.NewTicker(m.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
		d, err := m.login()
		out = append(out, timing{d: d, err: err})
	}
}

// login dials the command port from 127.0.0.1, logs in and returns how
// long both took.
func (m *noHandshake) login() (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := client.Options{
		Server: m.target.server, CommandPort: m.target.command, MediaPort: m.target.media,
		TLS12DHEOnly: m.dhe, LocalAddr: "127.0.0.1", Keepalive: -1, Timeout: 30 * time.Second,
	}
	pinOption(&o, m.pin)
	start := time.Now()
	c, err := client.Dial(ctx, o)
	if err != nil {
		return time.Since(start), err
	}
	defer c.Close()
	err = c.Login(ctx, m.user, m.password)
	return time.Since(start), err
}

func (m *noHandshake) report(stdout io.Writer, logins []timing, lives *lifetimes, opened int) {
	fmt.Fprintf(stdout, "no-handshake: legitimate dial+TLS+login during the attack: %s\n", timingSummary(logins))
	early, atDeadline, late, open := lives.split(m.deadline)
	fmt.Fprintf(stdout, "no-handshake: of %d attack connections the server closed %d before its handshake deadline (refused or cut: %s), "+
		"%d at it (%s), %d later (%s), and left %d open until the end (%v)\n",
		opened, len(early), durationSpread(early), len(atDeadline), durationSpread(atDeadline),
		len(late), durationSpread(late), open, m.hold)
}

// legacyTarget is a dtoperator's legacy ports on a loopback address.
type legacyTarget struct {
	server         string
	command, media int
}

func (t *legacyTarget) flags(fs *flag.FlagSet) {
	fs.StringVar(&t.server, "server", "127.0.0.1", "server address (loopback only)")
	fs.IntVar(&t.command, "command", 1991, "legacy command port")
	fs.IntVar(&t.media, "media", 2014, "legacy media port")
}

// check refuses any target that is not a loopback address.
func (t *legacyTarget) check() error {
	a, err := netip.ParseAddr(t.server)
	if err != nil || !a.IsLoopback() {
		return fmt.Errorf("--server %q: only a loopback IP address may be attacked", t.server)
	}
	return nil
}

// dialFrom opens a TCP connection to port from the local address from.
func (t *legacyTarget) dialFrom(from netip.Addr, port int) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))}
	return d.Dial("tcp", net.JoinHostPort(t.server, strconv.Itoa(port)))
}

// maxAttackSources is how many source addresses attackSource names.
const maxAttackSources = 250 * 250

// attackSource is the i-th attack source address: 127.1.0.1, 127.1.0.2, ...,
// 127.1.0.250, 127.1.1.1, ... (Linux routes all of 127.0.0.0/8 to lo).
func attackSource(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(1 + i%250)})
}

// lifetimes records how long each attack connection lived.
type lifetimes struct {
	mu     sync.Mutex
	closed []time.Duration // lifetime of each connection the server closed
	open   int             // still open when the attack ended
	errs   []string        // first dial errors
}

// watch reads c until the server closes it or ctx ends, then closes c.
func (l *lifetimes) watch(ctx context.Context, c net.Conn, opened time.Time) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 64)
	for range 1000 { // a server that writes to a silent client is odd, but bounded
		if _, err := c.Read(buf); err != nil {
			l.mu.Lock()
			defer l.mu.Unlock()
			if ctx.Err() != nil {
				l.open++
			} else {
				l.closed = append(l.closed, time.Since(opened))
			}
			return
		}
	}
}

func (l *lifetimes) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 3 {
		l.errs = append(l.errs, err.Error())
	}
}

func (l *lifetimes) firstErr() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.errs, "; ")
}

// split sorts the lifetimes of the connections the server closed: well
// before deadline, around it (-1 s, +2 s for a loaded server), later; and
// counts those never closed.
func (l *lifetimes) split(deadline time.Duration) (early, at, late []time.Duration, open int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.closed {
		switch {
		case d < deadline-time.Second:
			early = append(early, d)
		case d <= deadline+2*time.Second:
			at = append(at, d)
		default:
			late = append(late, d)
		}
	}
	return early, at, late, l.open
}

// timing is one timed legitimate attempt.
type timing struct {
	d   time.Duration
	err error
}

// timingSummary prints the count, failures, p50 and max of samples.
func timingSummary(samples []timing) string {
	var ds []time.Duration
	var errs []string
	for _, s := range samples {
		if s.err != nil {
			errs = append(errs, fmt.Sprintf("%v after %v", s.err, roundDur(s.d)))
			continue
		}
		ds = append(ds, s.d)
	}
	out := fmt.Sprintf("%d tries, %d ok, %s", len(samples), len(ds), durationSpread(ds))
	if len(errs) > 0 {
		out += fmt.Sprintf("; %d failed, first: %s", len(errs), errs[0])
	}
	return out
}

// durationSpread is "p50 X, max Y" of ds.
func durationSpread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return fmt.Sprintf("min %v, p50 %v, max %v", roundDur(ds[0]), roundDur(ds[len(ds)/2]), roundDur(ds[len(ds)-1]))
}

// roundDur rounds d for printing.
func roundDur(d time.Duration) time.Duration {
	if d >= 10*time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}
