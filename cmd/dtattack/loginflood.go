package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/dtcall/dtcall/client"
)

// login-flood: a few sources, each with a few connections, loop
// wrong-password logins; meanwhile a legitimate user logs in from another
// source, a few times, and the mode prints how long each of those logins
// took. It measures the fairness of the server's password-check queue:
// the flood should cost a legitimate login about one check, not the
// flood's length (BENCHMARKS.md "Logins under a password-guessing flood").

func init() {
	register("login-flood", "wrong-password logins from N sources x M connections; times a legitimate login from another source", runLoginFlood)
}

// loginTarget is the server the login modes talk to, from their flags.
type loginTarget struct {
	server      string
	commandPort int
	quicPort    int
	pinFile     string
	pin         string
	transport   string
}

// addFlags defines the target's flags on fs.
func (t *loginTarget) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&t.server, "server", "127.0.0.1", "server address (loopback only)")
	fs.IntVar(&t.commandPort, "command-port", 1991, "legacy command port (TCP)")
	fs.IntVar(&t.quicPort, "quic-port", 1991, "QUIC port (UDP) (default: the command port)")
	fs.StringVar(&t.pinFile, "pin-file", "", "the server's certificate, PEM (dtoperator's data folder has cert.pem)")
	fs.StringVar(&t.pin, "pin", "", `or its fingerprint as dtoperator logs it ("sha256:...", "spki:...")`)
	fs.StringVar(&t.transport, "transport", "tcp", "tcp or quic")
}

// check validates the flags: a loopback server, a pin, a known transport.
func (t *loginTarget) check() error {
	a, err := netip.ParseAddr(t.server)
	switch {
	case err != nil || !a.IsLoopback():
		return fmt.Errorf("--server %q: want a loopback address", t.server)
	case t.pinFile == "" && t.pin == "":
		return errors.New("--pin-file or --pin is required")
	case t.transport != "tcp" && t.transport != "quic":
		return fmt.Errorf("--transport %q: want tcp or quic", t.transport)
	}
	return nil
}

// dial connects from the loopback address from; timeout bounds each
// request (the login reply may take a while under a flood).
func (t *loginTarget) dial(ctx context.Context, from string, timeout time.Duration) (*client.Client, error) {
	tr := client.TCP
	if t.transport == "quic" {
		tr = client.QUIC
	}
	return client.Dial(ctx, client.Options{
		Server: t.server, CommandPort: t.commandPort, QUICPort: t.quicPort, Transport: tr,
		PinFile: t.pinFile, PinSHA256: t.pin, LocalAddr: from,
		Timeout: timeout, DialTimeout: 3 * time.Second, Keepalive: -1,
	})
}

// loginSource returns 127.0.0.n, the source of the n-th simulated host.
func loginSource(n int) string { return netip.AddrFrom4([4]byte{127, 0, 0, byte(n)}).String() }

// parseLoginFlags parses args into fs; on -h it prints the usage to stdout.
func parseLoginFlags(fs *pflag.FlagSet, args []string, stdout, stderr io.Writer) (exit int, ok bool) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage of dtattack %s:\n%s", fs.Name(), fs.FlagUsages())
			return 0, false
		}
		fmt.Fprintf(stderr, "dtattack %s: %v\n", fs.Name(), err)
		return 2, false
	}
	return 0, true
}

// loginFloodCounts are the attackers' counters.
type loginFloodCounts struct {
	attempts, refused, failed, redials atomic.Int64
}

func runLoginFlood(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("login-flood", pflag.ContinueOnError)
	var t loginTarget
	t.addFlags(fs)
	sources := fs.Int("sources", 4, "attacking sources: 127.0.0.2, 127.0.0.3, ... (at most 100)")
	conns := fs.Int("conns", 3, "connections per attacking source, each looping wrong-password logins (at most 256)")
	victims := fs.StringSlice("attack-users", []string{"righthand", "libprohibited", "zapper"}, "accounts the flood guesses at, in turn")
	user := fs.String("user", "zapper", "the legitimate user")
	password := fs.String("password", "railgun", "the legitimate user's password")
	from := fs.String("from", "127.0.0.200", "the legitimate user's source address")
	tries := fs.Int("tries", 5, "legitimate logins to time (at most 100)")
	warmup := fs.Duration("warmup", 3*time.Second, "flood time before the first legitimate login")
	gap := fs.Duration("gap", 2*time.Second, "pause between legitimate logins")
	if code, ok := parseLoginFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if !fs.Changed("quic-port") {
		t.quicPort = t.commandPort // as dtoperator's quic defaults to its command port
	}
	if err := t.check(); err != nil {
		fmt.Fprintln(stderr, "dtattack login-flood:", err)
		return 2
	}
	if *sources < 0 || *sources > 100 || *conns < 1 || *conns > 256 || *tries < 1 || *tries > 100 || len(*victims) == 0 {
		fmt.Fprintln(stderr, "dtattack login-flood: --sources 0..100, --conns 1..256, --tries 1..100, --attack-users not empty")
		return 2
	}
	if a, err := netip.ParseAddr(*from); err != nil || !a.IsLoopback() {
		fmt.Fprintf(stderr, "dtattack login-flood: --from %q: want a loopback address\n", *from)
		return 2
	}
	// Bounded: the flood ends when the last try does, or at this limit.
	limit := *warmup + time.Duration(*tries)*(*gap+40*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()

	var counts loginFloodCounts
	var wg sync.WaitGroup
	floodCtx, stopFlood := context.WithCancel(ctx)
	for s := range *sources {
		for c := range *conns {
			wg.Go(func() { loginFloodLoop(floodCtx, &t, loginSource(2+s), *victims, s**conns+c, &counts) })
		}
	}
	fmt.Fprintf(stdout, "flood: %d sources x %d connections, wrong passwords for %v; legitimate %s from %s over %s\n",
		*sources, *conns, *victims, *user, *from, t.transport)
	loginSleep(ctx, *warmup)
	var times []time.Duration
	failures := 0
	for i := range *tries {
		start := time.Now()
		dial, err := loginLegit(ctx, &t, *from, *user, *password)
		took := time.Since(start)
		status := "ok"
		if err != nil {
			status, failures = "FAILED: "+err.Error(), failures+1
		}
		fmt.Fprintf(stdout, "try %d: %.3f s (dial %.3f s, login %.3f s) %s\n",
			i+1, took.Seconds(), dial.Seconds(), (took - dial).Seconds(), status)
		times = append(times, took)
		if i < *tries-1 {
			loginSleep(ctx, *gap)
		}
	}
	stopFlood()
	wg.Wait()
	fmt.Fprintf(stdout, "legitimate login: min %s, median %s, max %s over %d tries, %d failed\n",
		loginSecs(slices.Min(times)), loginSecs(loginMedian(times)), loginSecs(slices.Max(times)), len(times), failures)
	fmt.Fprintf(stdout, "flood: %d wrong logins sent, %d refused, %d other errors, %d reconnects\n",
		counts.attempts.Load(), counts.refused.Load(), counts.failed.Load(), counts.redials.Load())
	if failures > 0 {
		return 1
	}
	return 0
}

// loginFloodLoop logs in with a wrong password on one connection from from,
// again and again until ctx ends, reconnecting when the connection fails.
func loginFloodLoop(ctx context.Context, t *loginTarget, from string, victims []string, n int, counts *loginFloodCounts) {
	for i := 0; ctx.Err() == nil; {
		c, err := t.dial(ctx, from, 40*time.Second)
		if err != nil {
			counts.failed.Add(1)
			loginSleep(ctx, 200*time.Millisecond)
			continue
		}
		for ctx.Err() == nil {
			counts.attempts.Add(1)
			err := c.Login(ctx, victims[(n+i)%len(victims)], fmt.Sprintf("guess-%d", i))
			i++
			if !errors.Is(err, client.ErrRefused) {
				if ctx.Err() == nil {
					counts.failed.Add(1)
				}
				break
			}
			counts.refused.Add(1)
		}
		c.Close()
		if ctx.Err() == nil {
			counts.redials.Add(1)
		}
	}
}

// loginLegit dials and logs in, and returns the time the dial took.
func loginLegit(ctx context.Context, t *loginTarget, from, user, password string) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	c, err := t.dial(ctx, from, 40*time.Second)
	dial := time.Since(start)
	if err != nil {
		return dial, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	return dial, c.Login(ctx, user, password)
}

// loginSleep sleeps for d or until ctx ends.
func loginSleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// loginMedian returns the median of ds (the mean of the middle two for an even
// count); ds must not be empty.
func loginMedian(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// loginQuantile returns the q-quantile (0..1) of ds by the nearest rank.
func loginQuantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[i]
}

func loginSecs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
