package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

func init() {
	register("quic-idle", "QUIC connections that handshake, open every stream allowed, write a little and idle: server RSS per connection",
		runQUICIdle)
}

// quicIdle is the quic-idle attack's settings.
type quicIdle struct {
	server      string
	pid         int
	conns       int
	sources     int
	first       netip.Addr
	write       int
	maxStreams  int
	parallel    int
	hold        time.Duration
	settle      time.Duration
	byServer    bool
	allowRemote bool
}

// quicIdleResult is what the attack counted.
type quicIdleResult struct {
	ok, refused, failed atomic.Int64
	uni, bidi           atomic.Int64 // streams opened
	firstErr            atomic.Pointer[string]
}

func runQUICIdle(args []string, stdout, stderr io.Writer) int {
	a, err := parseQUICIdle(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "dtattack quic-idle:", err)
		return 2
	}
	if err := a.run(stdout); err != nil {
		fmt.Fprintln(stderr, "dtattack quic-idle:", err)
		return 1
	}
	return 0
}

func parseQUICIdle(args []string, stderr io.Writer) (*quicIdle, error) {
	fs := flag.NewFlagSet("dtattack quic-idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	a := &quicIdle{}
	first := fs.String("first-source", "127.0.0.2", "first source address; the others follow it (127.0.0.2, 127.0.0.3, ...)")
	fs.StringVar(&a.server, "server", "127.0.0.1:1991", "the server's QUIC address (UDP)")
	fs.IntVar(&a.pid, "pid", 0, "the server's process id, to read its RSS (/proc/PID/status); 0 = no RSS figures")
	fs.IntVar(&a.conns, "conns", 1000, "connections to open (at most 30000)")
	fs.IntVar(&a.sources, "sources", 0, "distinct source addresses, the connections spread evenly (0 = one per 8 connections)")
	fs.IntVar(&a.write, "write", 200, "bytes written on each stream opened (no newline: never a complete command)")
	fs.IntVar(&a.maxStreams, "max-streams", 200, "at most this many streams of each kind per connection")
	fs.IntVar(&a.parallel, "parallel", 32, "handshakes in flight at once")
	fs.DurationVar(&a.hold, "hold", 15*time.Second, "how long the connections idle once all are open (RSS is sampled meanwhile)")
	fs.DurationVar(&a.settle, "settle", 15*time.Second, "how long to watch the RSS after the connections closed")
	fs.BoolVar(&a.byServer, "wait-server", false, "don't close the connections: wait (at most 60 s) until the server closes them (login deadline)")
	fs.BoolVar(&a.allowRemote, "allow-remote", false, "allow a server address that is not loopback")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if a.first, err = netip.ParseAddr(*first); err != nil || !a.first.Is4() {
		return nil, fmt.Errorf("--first-source %q is not an IPv4 address", *first)
	}
	host, _, err := net.SplitHostPort(a.server)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", a.server, err)
	}
	if ip, err := netip.ParseAddr(host); (err != nil || !ip.IsLoopback()) && !a.allowRemote {
		return nil, fmt.Errorf("--server %q is not a loopback address (--allow-remote to insist)", a.server)
	}
	if a.conns < 1 || a.conns > 30000 || a.parallel < 1 || a.write < 0 || a.maxStreams < 0 {
		return nil, errors.New("--conns must be 1..30000, --parallel positive, --write and --max-streams not negative")
	}
	if a.sources <= 0 {
		a.sources = (a.conns + 7) / 8
	}
	a.sources = min(a.sources, a.conns)
	return a, nil
}

// sourceAddrs returns n loopback addresses from first on, skipping those
// ending in .0 or .255.
func sourceAddrs(first netip.Addr, n int) []netip.Addr {
	addrs := make([]netip.Addr, 0, n)
	for a := first; len(addrs) < n; a = a.Next() {
		if b := a.As4(); b[3] != 0 && b[3] != 255 {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

func (a *quicIdle) run(stdout io.Writer) error {
	raddr, err := net.ResolveUDPAddr("udp", a.server)
	if err != nil {
		return err
	}
	var trs []*quicgo.Transport
	defer func() {
		for _, tr := range trs {
			tr.Close()
			tr.Conn.Close()
		}
	}()
	for _, src := range sourceAddrs(a.first, a.sources) {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		if err != nil {
			return fmt.Errorf("bind %v: %w", src, err)
		}
		trs = append(trs, &quicgo.Transport{Conn: pc})
	}
	rss := newRSSWatch(a.pid)
	before := rss.sample()
	fmt.Fprintf(stdout, "quic-idle: %d connections from %d sources (%v on) to %s, %d bytes per stream\n",
		a.conns, len(trs), a.first, a.server, a.write)

	t0 := time.Now()
	res := &quicIdleResult{}
	conns := a.open(raddr, trs, res, rss)
	fmt.Fprintf(stdout, "opened in %v: %d established, %d refused (CONNECTION_REFUSED), %d failed",
		time.Since(t0).Round(time.Millisecond), res.ok.Load(), res.refused.Load(), res.failed.Load())
	if e := res.firstErr.Load(); e != nil {
		fmt.Fprintf(stdout, " (first failure: %s)", *e)
	}
	fmt.Fprintln(stdout)
	if n := res.ok.Load(); n > 0 {
		fmt.Fprintf(stdout, "streams opened per connection: %.1f unidirectional, %.1f bidirectional\n",
			float64(res.uni.Load())/float64(n), float64(res.bidi.Load())/float64(n))
	}
	for end := time.Now().Add(a.hold); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		rss.sample()
	}
	held := rss.sample()
	live, why := 0, map[string]int{}
	for _, qc := range conns {
		if qc.Context().Err() == nil {
			live++
		} else {
			why[context.Cause(qc.Context()).Error()]++
		}
	}
	fmt.Fprintf(stdout, "still open after the %v hold: %d\n", a.hold, live)
	for reason, n := range why {
		fmt.Fprintf(stdout, "  closed early: %d × %s\n", n, reason)
	}
	closedAt := time.Now()
	if a.byServer {
		a.awaitServerClose(conns, rss)
	} else {
		for _, qc := range conns {
			qc.CloseWithError(0, "")
		}
	}
	gone := time.Since(closedAt)
	for end := time.Now().Add(a.settle); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		rss.sample()
	}
	after := rss.sample()
	if a.pid == 0 {
		return nil
	}
	peak := rss.peak
	fmt.Fprintf(stdout, "server RSS (KiB): before %d, peak %d, held %d, %v after the close %d\n",
		before, peak, held, (gone + a.settle).Round(time.Second), after)
	if n := res.ok.Load(); n > 0 {
		fmt.Fprintf(stdout, "per established connection: %.1f KiB at the peak; after the close %+d KiB in all\n",
			float64(peak-before)/float64(n), after-before)
	}
	if live > 0 && int64(live) < res.ok.Load() {
		fmt.Fprintf(stdout, "(the server closed %d before the end of the hold: the figure above is low; open faster or fewer)\n",
			res.ok.Load()-int64(live))
	}
	return nil
}

// open dials the connections, a.parallel at a time, each from the next
// source, and opens and writes its streams. It returns the established
// connections.
func (a *quicIdle) open(raddr *net.UDPAddr, trs []*quicgo.Transport, res *quicIdleResult, rss *rssWatch) []*quicgo.Conn {
	tc := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"dtcall/1"}}
	qcfg := &quicgo.Config{HandshakeIdleTimeout: 10 * time.Second, MaxIdleTimeout: 90 * time.Second,
		KeepAlivePeriod: 5 * time.Second, EnableDatagrams: true}
	junk := []byte(strings.Repeat("x", a.write))
	var (
		mu    sync.Mutex
		conns []*quicgo.Conn
		wg    sync.WaitGroup
	)
	sem := make(chan struct{}, a.parallel)
	for i := range a.conns {
		sem <- struct{}{}
		if i%100 == 0 {
			rss.sample()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			qc, err := trs[i%len(trs)].Dial(ctx, raddr, tc, qcfg)
			var te *quicgo.TransportError
			switch {
			case errors.As(err, &te) && te.ErrorCode == quicgo.ConnectionRefused:
				res.refused.Add(1)
				return
			case err != nil:
				res.failed.Add(1)
				msg := err.Error()
				res.firstErr.CompareAndSwap(nil, &msg)
				return
			}
			res.ok.Add(1)
			mu.Lock()
			conns = append(conns, qc)
			mu.Unlock()
			a.fill(qc, junk, res)
		})
	}
	wg.Wait()
	return conns
}

// fill opens as many streams of each kind as the server allows (the
// first bidirectional one is the command stream) and writes junk on each.
func (a *quicIdle) fill(qc *quicgo.Conn, junk []byte, res *quicIdleResult) {
	for range a.maxStreams {
		st, err := qc.OpenUniStream()
		if err != nil {
			break
		}
		st.Write(junk)
		res.uni.Add(1)
	}
	for range a.maxStreams {
		st, err := qc.OpenStream()
		if err != nil {
			break
		}
		st.Write(junk)
		res.bidi.Add(1)
	}
}

// awaitServerClose waits until the server has closed every connection, at
// most 60 s.
func (a *quicIdle) awaitServerClose(conns []*quicgo.Conn, rss *rssWatch) {
	deadline := time.After(60 * time.Second)
	for _, qc := range conns {
		for done := false; !done; {
			select {
			case <-qc.Context().Done():
				done = true
			case <-time.After(250 * time.Millisecond):
				rss.sample()
			case <-deadline:
				return
			}
		}
	}
}

// rssWatch samples a process's resident set size and keeps the peak.
type rssWatch struct {
	pid  int
	peak int64 // KiB
}

func newRSSWatch(pid int) *rssWatch { return &rssWatch{pid: pid} }

// sample returns the current VmRSS in KiB (0 without a pid or on error).
func (w *rssWatch) sample() int64 {
	if w.pid == 0 {
		return 0
	}
	kib := readVmRSS(w.pid)
	w.peak = max(w.peak, kib)
	return kib
}
