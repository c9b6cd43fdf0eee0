package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/dtcall/dtcall/client"
)

// enum-timing: does a login's time tell a real user name from an unknown
// one? The mode times wrong-password logins for names in the users file
// and for random names that are not, interleaved at random on one
// connection, one at a time, and prints both distributions. Unknown names
// should cost what real ones do, whatever mix of hash parameters the file
// holds (BENCHMARKS.md "User enumeration by timing").

func init() {
	register("enum-timing", "times wrong-password logins for real and for unknown names: can timing enumerate users?", runEnumTiming)
}

// enumProbe is one timed login.
type enumProbe struct {
	name    string
	known   bool
	repeat  bool // an unknown name asked a second time
	elapsed time.Duration
}

func runEnumTiming(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("enum-timing", pflag.ContinueOnError)
	var t loginTarget
	t.addFlags(fs)
	known := fs.StringSlice("known", []string{"righthand", "libprohibited", "zapper"}, "names that are in the users file")
	probes := fs.Int("probes", 40, "timed logins per class: real names (in turn) and unknown names (each a new random one); at most 1000")
	repeats := fs.Int("repeats", 10, "unknown names asked a second time, to see that a name always costs the same")
	from := fs.String("from", "127.0.0.9", "source address")
	if code, ok := parseLoginFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if !fs.Changed("quic-port") {
		t.quicPort = t.commandPort // as dtoperator's quic defaults to its command port
	}
	if err := t.check(); err != nil {
		fmt.Fprintln(stderr, "dtattack enum-timing:", err)
		return 2
	}
	if len(*known) == 0 || *probes < 1 || *probes > 1000 || *repeats < 0 || *repeats > *probes {
		fmt.Fprintln(stderr, "dtattack enum-timing: --known not empty, --probes 1..1000, --repeats 0..probes")
		return 2
	}
	plan := enumPlan(*known, *probes, *repeats)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(len(plan))*15*time.Second)
	defer cancel()
	fmt.Fprintf(stdout, "%d logins with wrong passwords from %s over %s: %d for %v in turn, %d for random unknown names (%d of them asked twice)\n",
		len(plan), *from, t.transport, *probes, *known, *probes, *repeats)
	var conn enumConn
	defer conn.close()
	for i := range plan {
		elapsed, err := conn.probe(ctx, &t, *from, plan[i].name)
		if err != nil {
			fmt.Fprintf(stderr, "dtattack enum-timing: login %q: %v\n", plan[i].name, err)
			return 1
		}
		plan[i].elapsed = elapsed
	}
	enumReport(stdout, plan)
	return 0
}

// enumConn is the connection the probes go over. The server closes a
// connection that has not logged in within its login timeout (30 s), so
// a connection is used for enumConnAge only, and a probe that the closing
// connection cut off is made again on a new one.
type enumConn struct {
	c     *client.Client
	since time.Time
}

const enumConnAge = 20 * time.Second

// probe times one wrong-password login for name.
func (e *enumConn) probe(ctx context.Context, t *loginTarget, from, name string) (time.Duration, error) {
	for attempt := 0; ; attempt++ {
		if e.c == nil || time.Since(e.since) > enumConnAge {
			e.close()
			c, err := t.dial(ctx, from, 15*time.Second)
			if err != nil {
				return 0, fmt.Errorf("dial: %w", err)
			}
			e.c, e.since = c, time.Now()
		}
		start := time.Now()
		err := e.c.Login(ctx, name, "not-the-password")
		elapsed := time.Since(start)
		switch {
		case errors.Is(err, client.ErrRefused):
			return elapsed, nil
		case attempt > 0 || ctx.Err() != nil:
			return 0, fmt.Errorf("%w, want refused", err)
		}
		e.close() // cut off: again on a new connection
	}
}

func (e *enumConn) close() {
	if e.c != nil {
		e.c.Close()
		e.c = nil
	}
}

// enumPlan returns the logins to time, shuffled: probes for the known
// names in turn, probes for fresh unknown names, and repeats of the first
// unknown names.
func enumPlan(known []string, probes, repeats int) []enumProbe {
	var plan, unknown []enumProbe
	for i := range probes {
		plan = append(plan, enumProbe{name: known[i%len(known)], known: true})
		u := enumProbe{name: "u" + rand.Text()[:12]}
		unknown = append(unknown, u)
	}
	plan = append(plan, unknown...)
	mrand.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	// Repeats go in the second half, after their first probe.
	for _, u := range unknown[:repeats] {
		first := slices.IndexFunc(plan, func(p enumProbe) bool { return p.name == u.name })
		at := first + 1 + mrand.IntN(len(plan)-first)
		plan = slices.Insert(plan, at, enumProbe{name: u.name, repeat: true})
	}
	return plan
}

// enumReport prints each class's distribution, the ratio of the medians,
// the share of each class that was fast (under 3 times the fastest login
// of the run: the cheap hashes, in a mixed file) and whether names asked
// twice were fast or slow both times. In a mixed file the medians can
// agree while one class is never fast; the shares tell.
func enumReport(w io.Writer, plan []enumProbe) {
	var real, unknown, all []time.Duration
	first := map[string]time.Duration{}
	for _, p := range plan {
		switch {
		case p.known:
			real = append(real, p.elapsed)
		case !p.repeat:
			unknown = append(unknown, p.elapsed)
			first[p.name] = p.elapsed
		}
		all = append(all, p.elapsed)
	}
	fast := 3 * slices.Min(all)
	row := func(label string, ds []time.Duration) {
		n := 0
		for _, d := range ds {
			if d < fast {
				n++
			}
		}
		fmt.Fprintf(w, "%-14s n %3d  min %s  p25 %s  median %s  p75 %s  max %s  under %s: %d of %d\n", label, len(ds),
			loginSecs(slices.Min(ds)), loginSecs(loginQuantile(ds, .25)), loginSecs(loginMedian(ds)),
			loginSecs(loginQuantile(ds, .75)), loginSecs(slices.Max(ds)), loginSecs(fast), n, len(ds))
	}
	row("real names", real)
	row("unknown names", unknown)
	mr, mu := loginMedian(real), loginMedian(unknown)
	fmt.Fprintf(w, "median unknown / median real = %.3f (%+.1f%%)\n", mu.Seconds()/mr.Seconds(), 100*(mu.Seconds()/mr.Seconds()-1))
	same, n := 0, 0
	var diffs []time.Duration
	for _, p := range plan {
		if !p.repeat {
			continue
		}
		n++
		f := first[p.name]
		if (f < fast) == (p.elapsed < fast) {
			same++
		}
		diffs = append(diffs, max(f-p.elapsed, p.elapsed-f))
	}
	if n > 0 {
		fmt.Fprintf(w, "unknown names asked twice: %d of %d on the same side of %s both times; difference median %s, max %s\n",
			same, n, loginSecs(fast), loginSecs(loginMedian(diffs)), loginSecs(slices.Max(diffs)))
	}
}
