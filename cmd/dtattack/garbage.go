package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/client"
)

// garbage sends malformed and random inputs on every channel a client can
// reach: raw bytes and bad commands on the legacy command port, bad
// registrations and bytes on the media port, bad lines on a QUIC command
// stream and on a QUIC media stream, and random datagrams on a registered
// datagram channel. Meanwhile a legitimate call carries media, and the
// server's goroutines and RSS are read before, after, and once the
// handshake and login deadlines have passed.

func init() {
	register("garbage", "malformed and random input on every channel; checks a call and the server's resources", runGarbage)
}

type garbageFlags struct {
	server                 string
	commandPort, mediaPort int
	quicPort               int
	pin                    string
	userA, passA           string
	userB, passB           string
	userC, passC           string
	count                  int
	parallel               int
	pid                    int
	metrics                string
	settle                 time.Duration
	allowRemote            bool
	sources                int
}

func runGarbage(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("garbage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f garbageFlags
	fs.StringVar(&f.server, "server", "127.0.0.1", "server address (loopback unless --allow-remote)")
	fs.IntVar(&f.commandPort, "command-port", 1991, "legacy command port")
	fs.IntVar(&f.mediaPort, "media-port", 2014, "legacy media port")
	fs.IntVar(&f.quicPort, "quic-port", 1991, "QUIC port")
	fs.StringVar(&f.pin, "pin", "", "the server's certificate (file or fingerprint), for the legitimate call")
	fs.StringVar(&f.userA, "user-a", "", "first user of the legitimate call")
	fs.StringVar(&f.passA, "password-a", "", "its password")
	fs.StringVar(&f.userB, "user-b", "", "second user of the legitimate call (also logs in for the datagram channel)")
	fs.StringVar(&f.passB, "password-b", "", "its password")
	fs.StringVar(&f.userC, "user-c", "", "optional third user: random datagrams on its registered datagram channel")
	fs.StringVar(&f.passC, "password-c", "", "its password")
	fs.IntVar(&f.count, "count", 1000, "inputs per channel (at most 100000)")
	fs.IntVar(&f.parallel, "parallel", 8, "attack connections at a time")
	fs.IntVar(&f.pid, "pid", 0, "the server's pid, for its RSS")
	fs.StringVar(&f.metrics, "metrics", "", "the server's metrics address (host:port), for its goroutines")
	fs.DurationVar(&f.settle, "settle", 12*time.Second, "wait after the attack before the last reading (past the handshake deadline)")
	fs.BoolVar(&f.allowRemote, "allow-remote", false, "allow a server that is not on loopback")
	fs.IntVar(&f.sources, "sources", 2000, "distinct 127.x.y.z source addresses to spread the attack over (keeps it under per-source caps and autoban)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if f.pin == "" || f.userA == "" || f.userB == "" || f.count < 1 || f.count > 100000 || f.parallel < 1 || f.parallel > 256 {
		fmt.Fprintln(stderr, "dtattack garbage: need --pin, --user-a/--password-a, --user-b/--password-b; 1 <= --count <= 100000, 1 <= --parallel <= 256")
		return 2
	}
	if ip := net.ParseIP(f.server); !f.allowRemote && (ip == nil || !ip.IsLoopback()) {
		fmt.Fprintf(stderr, "dtattack garbage: %s is not a loopback address (--allow-remote to attack it anyway)\n", f.server)
		return 2
	}
	g := &garbageRun{f: f, out: stdout}
	if err := g.run(); err != nil {
		fmt.Fprintf(stderr, "dtattack garbage: %v\n", err)
		return 1
	}
	return 0
}

type garbageRun struct {
	f    garbageFlags
	out  io.Writer
	next atomic.Int64 // source address counter
}

// source returns the next attack source address (127.1.0.0 and up).
func (g *garbageRun) source() net.IP {
	n := int(g.next.Add(1)) % g.f.sources
	return net.IPv4(127, 1, byte(n>>8), byte(n))
}

func (g *garbageRun) run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	before := g.reading()
	fmt.Fprintf(g.out, "before: %s\n", before)

	talk, err := startTalk(ctx, g.f)
	if err != nil {
		return fmt.Errorf("legitimate call: %w", err)
	}
	channels := []struct {
		name string
		send func(ctx context.Context, i int) error
	}{
		{"tcp-command", g.tcpCommand},
		{"tcp-media", g.tcpMedia},
		{"quic-command", g.quicCommand},
		{"quic-media", g.quicMedia},
	}
	for _, ch := range channels {
		start := time.Now()
		sent, failed := g.many(ctx, ch.send)
		fmt.Fprintf(g.out, "%-13s %d inputs in %.1fs (%d could not be delivered: refused or closed early)\n",
			ch.name, sent, time.Since(start).Seconds(), failed)
	}
	start := time.Now()
	n, err := g.datagrams(ctx)
	if err != nil {
		return fmt.Errorf("datagrams: %w", err)
	}
	fmt.Fprintf(g.out, "%-13s %d random datagrams in %.1fs\n", "datagrams", n, time.Since(start).Seconds())

	after := g.reading()
	fmt.Fprintf(g.out, "after:  %s\n", after)
	res := talk.stop()
	fmt.Fprintf(g.out, "legitimate call: %s\n", res)
	time.Sleep(g.f.settle)
	settled := g.reading()
	fmt.Fprintf(g.out, "after %v: %s\n", g.f.settle, settled)
	if res.err != nil {
		return fmt.Errorf("the legitimate call failed: %w", res.err)
	}
	return nil
}

// many runs send count times, parallel at a time.
func (g *garbageRun) many(ctx context.Context, send func(context.Context, int) error) (sent, failed int) {
	var wg sync.WaitGroup
	var nFailed atomic.Int64
	jobs := make(chan int)
	for range g.f.parallel {
		wg.Go(func() {
			for i := range jobs {
				c, cancel := context.WithTimeout(ctx, 5*time.Second)
				if send(c, i) != nil {
					nFailed.Add(1)
				}
				cancel()
			}
		})
	}
	for i := range g.f.count {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return g.f.count, int(nFailed.Load())
}

// input returns the i-th malformed input: random bytes, or a mutation of
// a well-formed command or registration.
func input(i int, valid []string) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	switch i % 4 {
	case 0: // random bytes
		b := make([]byte, 1+r.IntN(2048))
		for j := range b {
			b[j] = byte(r.UintN(256))
		}
		return b
	case 1: // a valid message with bytes flipped
		b := []byte(valid[r.IntN(len(valid))])
		for range 1 + r.IntN(4) {
			b[r.IntN(len(b))] = byte(r.UintN(256))
		}
		return b
	case 2: // overlong
		return []byte(strings.Repeat(valid[r.IntN(len(valid))], 50+r.IntN(400)))
	default: // fields cut, doubled or empty
		parts := strings.Split(valid[r.IntN(len(valid))], "|")
		k := r.IntN(len(parts))
		switch r.IntN(3) {
		case 0:
			parts = parts[:k]
		case 1:
			parts = append(parts, parts[k:]...)
		default:
			parts[k] = ""
		}
		return []byte(strings.Join(parts, "|"))
	}
}

var badCommands = []string{
	"1764168000|login|alice|secret", "1764168000|call|bob|6144737382751829473",
	"1764168000|lookup|bob|1", "D", "1764168000|accept|x|99999999999999999999",
}

var badRegistrations = []string{"1764168000|6144737382751829473", "1764168000|1|datagram", "D"}

var insecureTLS = &tls.Config{InsecureSkipVerify: true} // the attacker checks nothing

// tcpCommand sends one input: raw bytes (no TLS at all) for a quarter of
// them, else a TLS connection carrying the input as one record.
func (g *garbageRun) tcpCommand(ctx context.Context, i int) error {
	return g.tcpSend(ctx, g.f.commandPort, i, badCommands)
}

func (g *garbageRun) tcpMedia(ctx context.Context, i int) error {
	return g.tcpSend(ctx, g.f.mediaPort, i, badRegistrations)
}

func (g *garbageRun) tcpSend(ctx context.Context, port, i int, valid []string) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: g.source()}}
	raw, err := d.DialContext(ctx, "tcp", net.JoinHostPort(g.f.server, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	defer raw.Close()
	dl, _ := ctx.Deadline()
	raw.SetDeadline(dl)
	msg := input(i, valid)
	if i%8 == 0 { // not even TLS: bytes where the ClientHello should be
		_, err = raw.Write(msg)
		raw.Read(make([]byte, 64))
		return err
	}
	c := tls.Client(raw, insecureTLS)
	if err := c.HandshakeContext(ctx); err != nil {
		return err
	}
	if _, err := c.Write(msg); err != nil {
		return err
	}
	c.Read(make([]byte, 256)) // a refusal, or the close
	return nil
}

// quicConn dials QUIC from the next source.
func (g *garbageRun) quicConn(ctx context.Context, datagrams bool) (*quicgo.Conn, *quicgo.Transport, error) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: g.source()})
	if err != nil {
		return nil, nil, err
	}
	tr := &quicgo.Transport{Conn: pc}
	tc := insecureTLS.Clone()
	tc.NextProtos = []string{client.ALPN}
	qc, err := tr.Dial(ctx, &net.UDPAddr{IP: net.ParseIP(g.f.server), Port: g.f.quicPort}, tc,
		&quicgo.Config{EnableDatagrams: datagrams, HandshakeIdleTimeout: 3 * time.Second})
	if err != nil {
		tr.Close()
		pc.Close()
		return nil, nil, err
	}
	return qc, tr, nil
}

func closeQUIC(qc *quicgo.Conn, tr *quicgo.Transport) {
	qc.CloseWithError(0, "")
	tr.Close()
	tr.Conn.Close()
}

// quicCommand sends one input as lines on a command stream.
func (g *garbageRun) quicCommand(ctx context.Context, i int) error {
	qc, tr, err := g.quicConn(ctx, false)
	if err != nil {
		return err
	}
	defer closeQUIC(qc, tr)
	return sendStream(ctx, qc, input(i, badCommands))
}

// quicMedia opens a (silent) command stream and sends one input on a
// second stream, where a registration belongs.
func (g *garbageRun) quicMedia(ctx context.Context, i int) error {
	qc, tr, err := g.quicConn(ctx, true)
	if err != nil {
		return err
	}
	defer closeQUIC(qc, tr)
	cmd, err := qc.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	cmd.Write([]byte("D\n"))
	return sendStream(ctx, qc, input(i, badRegistrations))
}

func sendStream(ctx context.Context, qc *quicgo.Conn, msg []byte) error {
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	dl, _ := ctx.Deadline()
	st.SetDeadline(dl)
	if _, err := st.Write(append(msg, '\n')); err != nil {
		return err
	}
	st.Read(make([]byte, 256))
	return nil
}

// datagrams sends count random datagrams (1 to 1100 bytes) on a
// connection that never registered media (the server discards them), and,
// with --user-c, count more on user C's registered datagram channel (C is
// logged in and idle, so the relay reads and discards them).
func (g *garbageRun) datagrams(ctx context.Context) (int, error) {
	qc, tr, err := g.quicConn(ctx, true)
	if err != nil {
		return 0, err
	}
	defer closeQUIC(qc, tr)
	sent, err := sendRandomDatagrams(g.f.count, qc.SendDatagram)
	if err != nil || g.f.userC == "" {
		return sent, err
	}
	c, err := client.Dial(ctx, talkOptions(g.f, client.QUICDatagram))
	if err != nil {
		return sent, err
	}
	defer c.Close()
	if err := c.Login(ctx, g.f.userC, g.f.passC); err != nil {
		return sent, err
	}
	if err := c.RegisterMedia(ctx); err != nil {
		return sent, err
	}
	n, err := sendRandomDatagrams(g.f.count, c.Media().WriteMedia)
	if err == nil {
		_, err = c.Lookup(ctx, g.f.userC) // the session still answers
	}
	return sent + n, err
}

// sendRandomDatagrams sends n random payloads with send.
func sendRandomDatagrams(n int, send func([]byte) error) (int, error) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1100)
	for i := range n {
		size := 4 + r.IntN(len(buf)-4)
		for j := range size {
			buf[j] = byte(r.UintN(256))
		}
		binary.BigEndian.PutUint32(buf, uint32(i))
		if err := send(buf[:size]); err != nil {
			return i, err
		}
		if i%64 == 63 {
			time.Sleep(time.Millisecond) // stay under quic-go's send queue
		}
	}
	return n, nil
}

// reading is the server's goroutines and RSS, where it can tell.
type reading struct{ goroutines, rssKB int64 }

func (r reading) String() string {
	return fmt.Sprintf("goroutines %s, RSS %s", orUnknown(r.goroutines, ""), orUnknown(r.rssKB, " KiB"))
}

func orUnknown(n int64, unit string) string {
	if n < 0 {
		return "unknown"
	}
	return strconv.FormatInt(n, 10) + unit
}

func (g *garbageRun) reading() reading {
	r := reading{goroutines: -1, rssKB: -1}
	if g.f.pid > 0 {
		r.rssKB = readVmRSS(g.f.pid)
	}
	if g.f.metrics != "" {
		r.goroutines = scrapeGauge("http://"+g.f.metrics+"/metrics", "go_goroutines")
	}
	return r
}

// scrapeGauge reads one unlabelled gauge from a Prometheus text page.
func scrapeGauge(url, name string) int64 {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int64(f)
			}
		}
	}
	return -1
}

// talk is the legitimate call: A (legacy TLS) and B (QUIC stream) send
// numbered frames at 50/s each way.
type talk struct {
	a, b     *client.Client
	stopCh   chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	sent     [2]int
	got      [2]int
	maxGap   time.Duration
	firstErr error
}

type talkResult struct {
	sent, got [2]int
	maxGap    time.Duration
	err       error
}

func (r talkResult) String() string {
	s := fmt.Sprintf("A→B %d/%d frames, B→A %d/%d, longest gap %v", r.got[0], r.sent[0], r.got[1], r.sent[1], r.maxGap.Round(time.Millisecond))
	if r.err != nil {
		s += ", error: " + r.err.Error()
	}
	return s
}

func talkOptions(f garbageFlags, tr client.Transport) client.Options {
	o := client.Options{Server: f.server, CommandPort: f.commandPort, MediaPort: f.mediaPort, QUICPort: f.quicPort,
		Transport: tr, Keepalive: -1, LocalAddr: "127.0.0.1"}
	pinOption(&o, f.pin)
	return o
}

func startTalk(ctx context.Context, f garbageFlags) (*talk, error) {
	online := func(tr client.Transport, user, pw string) (*client.Client, error) {
		return online(ctx, talkOptions(f, tr), user, pw)
	}
	a, err := online(client.TCP, f.userA, f.passA)
	if err != nil {
		return nil, err
	}
	b, err := online(client.QUIC, f.userB, f.passB)
	if err != nil {
		a.Close()
		return nil, err
	}
	if res, err := a.Call(ctx, f.userB); err != nil || res != client.Available {
		a.Close()
		b.Close()
		return nil, fmt.Errorf("call: %v %v", res, err)
	}
	for ev := range b.Events() {
		if ev.Kind == client.Incoming {
			break
		}
	}
	if err := b.Accept(ctx, f.userA); err != nil {
		a.Close()
		b.Close()
		return nil, err
	}
	t := &talk{a: a, b: b, stopCh: make(chan struct{})}
	t.wg.Go(func() { t.send(0, a) })
	t.wg.Go(func() { t.send(1, b) })
	t.wg.Go(func() { t.recv(0, b) })
	t.wg.Go(func() { t.recv(1, a) })
	return t, nil
}

func (t *talk) fail(err error) {
	t.mu.Lock()
	if t.firstErr == nil {
		t.firstErr = err
	}
	t.mu.Unlock()
}

func (t *talk) send(dir int, c *client.Client) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	frame := make([]byte, 32)
	for n := 0; ; n++ {
		select {
		case <-t.stopCh:
			return
		case <-tick.C:
		}
		binary.BigEndian.PutUint64(frame, uint64(n))
		if err := c.Media().WriteMedia(frame); err != nil {
			t.fail(fmt.Errorf("send: %w", err))
			return
		}
		t.mu.Lock()
		t.sent[dir]++
		t.mu.Unlock()
	}
}

func (t *talk) recv(dir int, c *client.Client) {
	var buf []byte
	last := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		p, err := c.Media().ReadMedia(ctx)
		cancel()
		select {
		case <-t.stopCh:
			return
		default:
		}
		if errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		if err != nil {
			t.fail(fmt.Errorf("receive: %w", err))
			return
		}
		now := time.Now()
		t.mu.Lock()
		t.maxGap = max(t.maxGap, now.Sub(last))
		last = now
		buf = append(buf, p...)
		for ; len(buf) >= 32; buf = buf[32:] {
			t.got[dir]++
		}
		t.mu.Unlock()
	}
}

func (t *talk) stop() talkResult {
	time.Sleep(300 * time.Millisecond) // the last frames arrive
	close(t.stopCh)
	t.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t.a.End(ctx, t.b.User())
	t.a.Close()
	t.b.Close()
	return talkResult{sent: t.sent, got: t.got, maxGap: t.maxGap, err: t.firstErr}
}
