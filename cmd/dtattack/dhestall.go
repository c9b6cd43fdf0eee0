package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	ztls "github.com/zmap/zcrypto/tls"

	"github.com/dtcall/dtcall/transport/tcp/clienthello"
)

func init() {
	register("dhe-stall", "legacy command port: K connections start a DHE handshake and stall; "+
		"times a legitimate DHE-only (2017 Android) handshake meanwhile", runDHEStall)
}

// dheOnlySuite is TLS_DHE_RSA_WITH_AES_256_GCM_SHA384, the 2017 Android suite.
const dheOnlySuite = 0x009f

// dheStall is the dhe-stall mode's flags.
type dheStall struct {
	target   legacyTarget
	conns    int
	sources  int
	duration time.Duration
	every    time.Duration
}

func runDHEStall(args []string, stdout, stderr io.Writer) int {
	var m dheStall
	fs := flag.NewFlagSet("dhe-stall", flag.ContinueOnError)
	fs.SetOutput(stderr)
	m.target.flags(fs)
	fs.IntVar(&m.conns, "conns", 8, "stalled handshakes held at once (the server has 2×GOMAXPROCS DHE slots)")
	fs.IntVar(&m.sources, "sources", 4, "distinct source addresses (127.1.0.1 on) they come from")
	fs.DurationVar(&m.duration, "duration", 30*time.Second, "how long to keep the attack up (at most 5m)")
	fs.DurationVar(&m.every, "every", time.Second, "time a legitimate DHE handshake this often")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	return checkAndRun(stderr, "dhe-stall", m.check, func() error { return m.run(stdout) })
}

func (m *dheStall) check() error {
	switch {
	case m.conns < 1 || m.conns > 1000:
		return errors.New("--conns must be 1..1000")
	case m.sources < 1 || m.sources > maxAttackSources:
		return fmt.Errorf("--sources must be 1..%d", maxAttackSources)
	case m.duration <= 0 || m.duration > 5*time.Minute:
		return errors.New("--duration must be above 0 and at most 5m")
	case m.every < 100*time.Millisecond:
		return errors.New("--every must be at least 100ms")
	}
	return m.target.check()
}

func (m *dheStall) run(stdout io.Writer) error {
	hello, err := dheClientHello()
	if err != nil {
		return err
	}
	m.handshake() // warm-up: zcrypto's first handshake is slow
	var before []timing
	for range 3 {
		d, err := m.handshake()
		before = append(before, timing{d: d, err: err})
	}
	fmt.Fprintf(stdout, "dhe-stall: legitimate DHE handshake before the attack: %s\n", timingSummary(before))
	ctx, cancel := context.WithTimeout(context.Background(), m.duration)
	defer cancel()
	var st stallStats
	var wg sync.WaitGroup
	for i := range m.conns {
		wg.Go(func() { m.stallLoop(ctx, attackSource(i%m.sources), hello, &st) })
	}
	for range 200 { // up to 2 s for every one to be answered once
		if st.answered.Load() >= int64(m.conns) || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintf(stdout, "dhe-stall: %d connections from %d sources sent a DHE-only ClientHello and stalled (%d answered so far)\n",
		m.conns, min(m.sources, m.conns), st.answered.Load())
	var during []timing
	tick := time.NewTicker(m.every)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			d, err := m.handshake()
			during = append(during, timing{d: d, err: err})
		}
	}
	wg.Wait()
	fmt.Fprintf(stdout, "dhe-stall: legitimate DHE handshake during the attack (%v): %s\n", m.duration, timingSummary(during))
	fmt.Fprintf(stdout, "dhe-stall: stalled handshakes: %d answered by the server, %d closed by it and opened again, %d dials failed, %d got no answer\n",
		st.answered.Load(), st.closed.Load(), st.failed.Load(), st.unanswered.Load())
	return nil
}

// stallStats counts what happened to the stalled handshakes.
type stallStats struct {
	answered, closed, failed, unanswered atomic.Int64
}

// stallLoop keeps one stalled handshake up until ctx ends: it sends the
// ClientHello, reads the server's answer, then sends nothing; when the
// server closes the connection (its handshake deadline) it opens another.
func (m *dheStall) stallLoop(ctx context.Context, from netip.Addr, hello []byte, st *stallStats) {
	for ctx.Err() == nil {
		c, err := m.target.dialFrom(from, m.target.command)
		if err != nil {
			st.failed.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		m.stallOne(ctx, c, hello, st)
	}
}

// stallOne sends hello on c and holds c, reading whatever comes, until the
// server closes it or ctx ends.
func (m *dheStall) stallOne(ctx context.Context, c net.Conn, hello []byte, st *stallStats) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write(hello); err != nil {
		st.closed.Add(1)
		return
	}
	buf := make([]byte, 16<<10)
	answered := false
	for range 1000 { // the server's flight is a few KiB
		n, err := c.Read(buf)
		if n > 0 && !answered {
			answered = true
			st.answered.Add(1)
		}
		if err != nil {
			switch {
			case ctx.Err() != nil:
			case answered:
				st.closed.Add(1)
			default:
				st.unanswered.Add(1)
			}
			return
		}
	}
}

// handshake times one DHE-only handshake from 127.0.0.1, as the 2017
// Android client makes it (the certificate is not checked: nothing secret
// is sent).
func (m *dheStall) handshake() (time.Duration, error) {
	start := time.Now()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	raw, err := d.Dial("tcp", net.JoinHostPort(m.target.server, strconv.Itoa(m.target.command)))
	if err != nil {
		return time.Since(start), err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	c := ztls.Client(raw, dheClientConfig())
	if err := c.Handshake(); err != nil {
		return time.Since(start), err
	}
	if st := c.ConnectionState(); st.CipherSuite != dheOnlySuite {
		return time.Since(start), fmt.Errorf("server chose suite %#04x, not DHE", st.CipherSuite)
	}
	return time.Since(start), nil
}

// dheClientConfig speaks like the 2017 Android client: TLS 1.2 offering
// only TLS_DHE_RSA_WITH_AES_256_GCM_SHA384.
func dheClientConfig() *ztls.Config {
	return &ztls.Config{
		InsecureSkipVerify: true, CipherSuites: []uint16{dheOnlySuite}, ForceSuites: true,
		MinVersion: ztls.VersionTLS12, MaxVersion: ztls.VersionTLS12,
	}
}

// dheClientHello captures the ClientHello records a DHE-only client sends,
// by running one over an in-memory pipe.
func dheClientHello() ([]byte, error) {
	client, server := net.Pipe()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		defer client.Close()
		_ = ztls.Client(client, dheClientConfig()).Handshake()
	})
	defer server.Close()
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, raw, err := clienthello.Read(server, 0)
	if err != nil {
		return nil, fmt.Errorf("capture a DHE ClientHello: %w", err)
	}
	return raw, nil
}
