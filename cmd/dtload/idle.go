package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/dtcall/dtcall/client"
)

// idleConfig is one "dtload idle" run: log users in, hold them idle,
// measure what that cost the server.
type idleConfig struct {
	run      runConfig // target, accounts and server PID; no calls
	count    int
	parallel int
	hold     time.Duration
	kind     client.Transport
}

// idleReport is what an idle run measured.
type idleReport struct {
	Users, OK       int
	Failed          map[string]int
	FirstError      *Failure // the earliest failed login, when OK < Users
	LoginsPerSecond float64
	Login           Percentiles // login alone, ms
	RSSBeforeKiB    int64       // server, before the first login
	RSSHeldKiB      int64       // server, with the users logged in and idle
	KiBPerUser      float64
	ServerCPUPct    float64 // % of one core while logging in
	DtloadCPUPct    float64
}

func idleCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("idle", stdout)
	var f runFlags
	f.defineTarget(fs)
	fs.StringVar(&f.transport, "transport", "tcp", "tcp, quic or datagram")
	var ic idleConfig
	fs.IntVar(&ic.count, "count", 0, "users to log in (default: every account)")
	fs.IntVar(&ic.parallel, "parallel", 32, "logins in flight at once")
	fs.DurationVar(&ic.hold, "hold", 5*time.Second, "how long to hold the users idle before measuring")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := ic.finish(&f); err != nil {
		return err
	}
	if err := f.await(ctx, ic.kind, stderr); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, ic.bound())
	defer cancel()
	rep, err := runIdle(ctx, ic)
	if err != nil {
		return err
	}
	rep.write(stdout, ic)
	if rep.OK < rep.Users {
		err := fmt.Errorf("%d of %d logins failed%s", rep.Users-rep.OK, rep.Users, reasons(rep.Failed))
		if f := rep.FirstError; f != nil {
			err = fmt.Errorf("%w\ndtload: first error: user %d, %s, at %.1fs: %s", err, f.Call, f.Reason, f.AtS, f.Error)
		}
		return err
	}
	return nil
}

// finish checks the flags and loads the accounts.
func (ic *idleConfig) finish(f *runFlags) error {
	c := &f.cfg
	if err := f.target(); err != nil {
		return err
	}
	kind, mixed, err := parseTransport(f.transport)
	switch {
	case err != nil:
		return usageError{err}
	case mixed:
		return usageError{errors.New("idle: --transport must be tcp, quic or datagram")}
	case f.accounts == "":
		return usageError{errors.New("need --accounts FILE (dtload users writes one)")}
	case ic.parallel < 1 || ic.hold < 0 || ic.count < 0:
		return usageError{errors.New("--parallel must be positive, --count and --hold not negative")}
	}
	if err := f.checkPin(); err != nil {
		return err
	}
	if c.accts, err = loadAccounts(f.accounts); err != nil {
		return err
	}
	if ic.count == 0 {
		ic.count = len(c.accts)
	}
	if ic.count > len(c.accts) {
		return usageError{fmt.Errorf("--count %d: the accounts file has %d", ic.count, len(c.accts))}
	}
	ic.run, ic.kind = *c, kind
	return nil
}

// bound is the most an idle run may take: every login at its step timeout,
// in waves of --parallel, plus the hold.
func (ic idleConfig) bound() time.Duration {
	waves := (ic.count + ic.parallel - 1) / ic.parallel
	return time.Duration(waves)*3*stepTimeout + ic.hold + 30*time.Second
}

// runIdle logs ic.count users in (dial, login, media registration),
// --parallel at a time, holds them for ic.hold, samples the server, and
// logs them out.
func runIdle(ctx context.Context, ic idleConfig) (*idleReport, error) {
	r := &runner{cfg: ic.run}
	if err := r.target(); err != nil {
		return nil, err
	}
	pid := ic.run.serverPIDs
	rep := &idleReport{Users: ic.count, Failed: map[string]int{}, RSSBeforeKiB: procRSS(pid...)}
	parties := make([]*party, ic.count)
	reasons := make([]string, ic.count)
	errs := make([]error, ic.count)
	when := make([]time.Time, ic.count)
	defer func() {
		var wg sync.WaitGroup
		for _, p := range parties {
			if p != nil && p.c != nil {
				wg.Go(func() { p.c.Close() })
			}
		}
		wg.Wait()
	}()
	srvStart, selfStart := procCPU(pid...), selfCPU()
	start := time.Now()
	sem := make(chan struct{}, ic.parallel)
	var wg sync.WaitGroup
	for i := range ic.count {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		parties[i] = &party{acct: ic.run.accts[i], kind: ic.kind, from: sourceFor(r.optsFor(i).Server, i), opts: r.optsFor(i)}
		wg.Go(func() {
			defer func() { <-sem }()
			reasons[i], errs[i] = parties[i].online(ctx, parties[i].opts)
			when[i] = time.Now()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(pid) != 0 {
		rep.ServerCPUPct = cpuPct(srvStart, procCPU(pid...))
	}
	rep.DtloadCPUPct = cpuPct(selfStart, selfCPU())
	var logins []int64
	var firstAt time.Time
	for i, why := range reasons {
		if why != "" {
			rep.Failed[why]++
			if rep.FirstError == nil || when[i].Before(firstAt) {
				firstAt = when[i]
				rep.FirstError = newFailure(i, why, errs[i], when[i].Sub(start))
			}
			continue
		}
		rep.OK++
		logins = append(logins, int64(parties[i].login.dur()))
	}
	rep.Login = percentiles(logins)
	rep.LoginsPerSecond = float64(rep.OK) / elapsed.Seconds()
	select {
	case <-time.After(ic.hold):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rep.RSSHeldKiB = procRSS(pid...)
	if rep.OK > 0 && rep.RSSBeforeKiB > 0 {
		rep.KiBPerUser = float64(rep.RSSHeldKiB-rep.RSSBeforeKiB) / float64(rep.OK)
	}
	return rep, nil
}

func (rep *idleReport) write(w io.Writer, ic idleConfig) {
	fmt.Fprintf(w, "dtload idle: %s, %d users over %s, %d logging in at a time, held %v\n",
		ic.run.server, rep.Users, ic.kind, ic.parallel, ic.hold)
	fmt.Fprintf(w, "  logins     %d ok, failed %d%s, %.1f/s (login p50 %.1f ms, p99 %.1f ms)\n",
		rep.OK, rep.Users-rep.OK, reasons(rep.Failed), rep.LoginsPerSecond, rep.Login.P50, rep.Login.P99)
	if len(ic.run.serverPIDs) != 0 {
		fmt.Fprintf(w, "  server     pid %s: RSS %d KiB before, %d KiB with %d idle users: %.1f KiB per user; CPU %.1f %% of one core while logging in\n",
			pidList(ic.run.serverPIDs), rep.RSSBeforeKiB, rep.RSSHeldKiB, rep.OK, rep.KiBPerUser, rep.ServerCPUPct)
	}
	fmt.Fprintf(w, "  dtload     CPU %.1f %% of one core while logging in\n", rep.DtloadCPUPct)
}
