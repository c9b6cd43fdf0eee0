package interop

// The Go agents of the matrix: package client behind the agent commands.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/client"
)

// goTransport is the transport of a Go kind.
type goTransport int

const (
	goTCP goTransport = iota + 1
	goQUIC
	goDatagram
)

func (t goTransport) client() client.Transport {
	switch t {
	case goQUIC:
		return client.QUIC
	case goDatagram:
		return client.QUICDatagram
	}
	return client.TCP
}

// goAgent is a package client Client driven by agent commands. One
// goroutine (the pair's worker) uses it.
type goAgent struct {
	o    client.Options
	c    *client.Client
	user string
	buf  []byte // media received and not yet checked, in whole or part frames
}

// goCommandTimeout bounds one command of a Go agent.
const goCommandTimeout = 10 * time.Second

func (e *matrixEnv) newGoAgent(tr goTransport) agent {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.goTLS[tr] == "" {
		ctx, cancel := context.WithTimeout(context.Background(), goCommandTimeout)
		e.goTLS[tr] = probeTLS(ctx, e.srv, tr)
		cancel()
	}
	return &goAgent{o: client.Options{
		Server:      "127.0.0.1",
		CommandPort: e.srv.cmdPort,
		MediaPort:   e.srv.mediaPort,
		QUICPort:    e.srv.cmdPort, // the QUIC front defaults to the command port
		Transport:   tr.client(),
		PinFile:     e.certFile,
		Timeout:     goCommandTimeout,
		Keepalive:   -1, // the scenarios send theirs
	}}
}

func (g *goAgent) close() {
	if g.c != nil {
		g.c.Close()
	}
}

func (g *goAgent) do(line string) (string, error) {
	w := strings.Fields(line)
	if len(w) == 0 {
		return "", errors.New("empty command")
	}
	if w[0] != "login" && g.c == nil {
		return "", errors.New("not logged in")
	}
	ctx, cancel := context.WithTimeout(context.Background(), goCommandTimeout)
	defer cancel()
	arg := func(i int) string {
		if i < len(w) {
			return w[i]
		}
		return ""
	}
	num := func(i int) int { n, _ := strconv.Atoi(arg(i)); return n }
	switch w[0] {
	case "login":
		return g.login(ctx, arg(1), arg(2))
	case "lookup":
		ok, err := g.c.Lookup(ctx, arg(1))
		if err != nil {
			return "", err
		}
		return map[bool]string{true: "exists", false: "doesntexist"}[ok], nil
	case "call":
		res, err := g.c.Call(ctx, arg(1))
		if errors.Is(err, client.ErrRefused) {
			return "invalid", nil
		}
		if err != nil {
			return "", err
		}
		return strings.ToLower(res.String()), nil
	case "accept":
		return "", g.c.Accept(ctx, arg(1))
	case "reject":
		return "", g.c.Reject(ctx, arg(1))
	case "end":
		return "", g.c.End(ctx, arg(1))
	case "timeout":
		return "", g.c.Timeout(ctx, arg(1))
	case "expect":
		return "", g.expect(arg(1), time.Duration(num(2))*time.Millisecond)
	case "quiet":
		return "", g.quiet(ctx)
	case "media-send":
		for i := range num(2) {
			if err := g.c.Media().WriteMedia(frame(g.user, arg(1), i)); err != nil {
				return "", fmt.Errorf("write media frame %d: %w", i, err)
			}
		}
		return "", nil
	case "media-expect":
		return "", g.mediaExpect(ctx, arg(1), num(2))
	case "media-quiet":
		return "", g.mediaQuiet(time.Duration(num(1)) * time.Millisecond)
	case "reregister":
		g.buf = nil
		return "", g.c.RegisterMedia(ctx)
	case "keepalive":
		return "", g.c.Keepalive()
	case "kill":
		return "", g.c.Close()
	case "tls":
		return "(see the legend)", nil
	}
	return "", fmt.Errorf("unknown command %q", w[0])
}

func (g *goAgent) login(ctx context.Context, user, password string) (string, error) {
	c, err := client.Dial(ctx, g.o)
	if err != nil {
		return "", err
	}
	g.c, g.user = c, user
	if err := c.Login(ctx, user, password); err != nil {
		return "", err
	}
	if err := c.RegisterMedia(ctx); err != nil {
		return "", err
	}
	return c.SessionID(), nil
}

// eventText is ev as the message it came from, after the server time.
func eventText(ev client.Event) string {
	m := map[client.EventKind]string{
		client.Incoming: "ring|incoming", client.Started: "call|start", client.Rejected: "call|reject",
		client.Ended: "call|end", client.TimedOut: "ring|timeout", client.Dropped: "call|drop",
	}
	return m[ev.Kind] + "|" + ev.Value
}

func (g *goAgent) expect(want string, d time.Duration) error {
	select {
	case ev, ok := <-g.c.Events():
		if !ok {
			return fmt.Errorf("command channel ended (%v) while waiting for %q", g.c.Err(), want)
		}
		if got := eventText(ev); got != want {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	case <-time.After(d):
		return fmt.Errorf("no %q within %v", want, d)
	}
}

// quiet checks that no notification waits: a lookup's answer comes after
// any that the server sent before it.
func (g *goAgent) quiet(ctx context.Context) error {
	if _, err := g.c.Lookup(ctx, "quiet-barrier"); err != nil {
		return err
	}
	select {
	case ev, ok := <-g.c.Events():
		if !ok {
			return fmt.Errorf("command channel ended: %v", g.c.Err())
		}
		return fmt.Errorf("unexpected %q", eventText(ev))
	default:
		return nil
	}
}

// mediaExpect reads until n frames from peer have come, whatever the
// chunking (stream bytes, or datagrams that may hold several frames).
func (g *goAgent) mediaExpect(ctx context.Context, peer string, n int) error {
	for i := range n {
		for len(g.buf) < frameSize {
			p, err := g.c.Media().ReadMedia(ctx)
			if err != nil {
				return fmt.Errorf("media frame %d: %w (have %d bytes of it)", i, err, len(g.buf))
			}
			g.buf = append(g.buf, p...)
		}
		got, want := g.buf[:frameSize], frame(peer, g.user, i)
		if string(got) != string(want) {
			return fmt.Errorf("media frame %d is %q, want %q", i, got, want)
		}
		g.buf = g.buf[frameSize:]
	}
	return nil
}

func (g *goAgent) mediaQuiet(d time.Duration) error {
	if len(g.buf) > 0 {
		return fmt.Errorf("%d media bytes where none were due: %q", len(g.buf), g.buf)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	p, err := g.c.Media().ReadMedia(ctx)
	if err == nil {
		return fmt.Errorf("%d media bytes where none were due: %q", len(p), p)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("media: %w", err)
	}
	return nil
}

// frameSize is an AMR-NB 12.2 kbit/s frame.
const frameSize = 32

// frame is the i-th 32-byte frame from one user to another, as
// LegacyClient.frame makes it.
func frame(from, to string, i int) []byte {
	f := []byte(strings.Repeat(".", frameSize))
	copy(f, fmt.Sprintf("%05d:%s>%s|", i, from, to))
	return f
}

// probeQUIC shakes hands with the QUIC front as package client does.
func probeQUIC(ctx context.Context, srv *server, conf *tls.Config, datagrams bool) string {
	conf = conf.Clone()
	conf.MinVersion = tls.VersionTLS13
	conf.NextProtos = []string{client.ALPN}
	qc, err := quicgo.DialAddr(ctx, fmt.Sprintf("127.0.0.1:%d", srv.cmdPort), conf,
		&quicgo.Config{EnableDatagrams: datagrams})
	if err != nil {
		return "? (" + err.Error() + ")"
	}
	defer qc.CloseWithError(0, "probe")
	st := qc.ConnectionState()
	s := tls.VersionName(st.TLS.Version) + " " + tls.CipherSuiteName(st.TLS.CipherSuite)
	if datagrams {
		s += fmt.Sprintf(", DATAGRAM frames: %v", st.SupportsDatagrams.Remote)
	}
	return s
}
