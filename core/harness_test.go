package core

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// This file holds an in-memory harness: fake connections that carry
// messages over channels, so the state machine is tested without sockets.

// fakeAccounts maps user names to passwords.
type fakeAccounts map[string]string

func (a fakeAccounts) Exists(name string) bool { _, ok := a[name]; return ok }

func (a fakeAccounts) Authenticate(ctx context.Context, source netip.Addr, name, password string) error {
	if pw, ok := a[name]; ok && pw == password {
		return nil
	}
	return errors.New("bad credentials")
}

// fakeConn is one end of a client channel. The test writes to in and reads
// from out; the core does the opposite.
type fakeConn struct {
	in     chan []byte
	out    chan []byte
	origin string
	dgram  bool

	once   sync.Once
	closed chan struct{}
	mu     sync.Mutex
	rdl    time.Time

	sent     atomic.Int64  // messages put
	handled  atomic.Int64  // messages the core returned for more after
	returned bool          // owned by the reader: the last read returned a message
	refused  atomic.Uint64 // the refusal code, if the core refused a registration
}

// put sends msg to the core.
func (c *fakeConn) put(msg string) {
	c.sent.Add(1)
	c.in <- []byte(msg)
}

// drained waits until the core has handled everything put on c: it has
// come back to read after the last message.
func (c *fakeConn) drained(t *testing.T) {
	t.Helper()
	waitFor(t, func() bool { return c.handled.Load() == c.sent.Load() })
}

func newFakeConn(origin string) *fakeConn {
	return &fakeConn{in: make(chan []byte, 64), out: make(chan []byte, 256), origin: origin, closed: make(chan struct{})}
}

type timeoutError struct{}

func (timeoutError) Error() string { return "i/o timeout" }
func (timeoutError) Timeout() bool { return true }

func (c *fakeConn) ReadMessage() ([]byte, error) {
	c.mu.Lock()
	dl := c.rdl
	c.mu.Unlock()
	var timer <-chan time.Time
	if !dl.IsZero() {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		timer = t.C
	}
	if c.returned {
		c.handled.Add(1)
		c.returned = false
	}
	select {
	case m := <-c.in:
		c.returned = true
		return m, nil
	case <-c.closed:
		return nil, io.EOF
	case <-timer:
		return nil, timeoutError{}
	}
}

// ReadMedia skips lone "D" keepalives, as the legacy adapter does.
func (c *fakeConn) ReadMedia() ([]byte, error) {
	for {
		m, err := c.ReadMessage()
		if err != nil || string(m) != "D" {
			return m, err
		}
	}
}

func (c *fakeConn) WriteMessage(msg []byte) error {
	select {
	case <-c.closed:
		return io.ErrClosedPipe
	default:
	}
	select {
	case c.out <- append([]byte(nil), msg...):
		return nil
	case <-c.closed:
		return io.ErrClosedPipe
	}
}

func (c *fakeConn) WriteMedia(p []byte) error { return c.WriteMessage(p) }

func (c *fakeConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	c.mu.Unlock()
	return nil
}
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }
func (c *fakeConn) RemoteAddr() netip.AddrPort       { return netip.MustParseAddrPort("192.0.2.1:1") }
func (c *fakeConn) Origin() any                      { return c.origin }
func (c *fakeConn) EnableDatagrams() error {
	if !c.dgram {
		return errors.New("no datagrams")
	}
	return nil
}

func (c *fakeConn) Refuse(r transport.Refusal) {
	c.refused.Store(uint64(r))
	c.Close()
}

func (c *fakeConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }
func (c *fakeConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// harness runs a core with fake clients.
type harness struct {
	t   *testing.T
	srv *Server
	wg  sync.WaitGroup
	now time.Time
}

var testAccounts = fakeAccounts{"alice": "a", "bob": "b", "carol": "c"}

func newHarness(t *testing.T, cfg Config) *harness {
	return newHarnessWith(t, cfg, testAccounts)
}

// newHarnessWith is newHarness serving accts.
func newHarnessWith(t *testing.T, cfg Config, accts Accounts) *harness {
	h := &harness{t: t}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h.srv = New(cfg, accts, log)
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // don't wait for calls to end
		h.srv.Shutdown(ctx)
		h.wg.Wait()
	})
	return h
}

// client is one fake phone: a command channel and maybe a media channel.
type client struct {
	h     *harness
	user  string
	cmd   *fakeConn
	media *fakeConn
	sid   string
}

func (h *harness) connect(origin string) *client {
	c := &client{h: h, cmd: newFakeConn(origin)}
	h.wg.Go(func() { h.srv.ServeCommand(context.Background(), c.cmd) })
	return c
}

// login connects, logs user in and registers media.
func (h *harness) login(user string) *client {
	h.t.Helper()
	c := h.connect("ip-" + user)
	c.user = user
	c.say("login", user, testAccounts[user])
	f := c.expect("resp|login|")
	c.sid = f[3]
	c.registerMedia()
	return c
}

func (c *client) registerMedia() {
	c.h.t.Helper()
	m := newFakeConn(c.cmd.origin)
	c.registerMediaConn(m, m)
}

// registerMediaConn registers conn, whose messages travel through m, as
// c's media channel.
func (c *client) registerMediaConn(m *fakeConn, conn transport.MediaConn) {
	c.h.t.Helper()
	c.media = m
	c.h.wg.Go(func() { c.h.srv.ServeMedia(context.Background(), conn) })
	c.media.put(ts() + "|" + c.sid)
	waitFor(c.h.t, func() bool {
		c.h.srv.mu.Lock()
		defer c.h.srv.mu.Unlock()
		s := c.h.srv.sessions[sidOf(c.sid)]
		return s != nil && s.media != nil && s.media.conn == conn
	})
}

func sidOf(s string) wire.SessionID {
	n, _ := strconv.ParseUint(s, 10, 64)
	return wire.SessionID(n)
}

func ts() string { return itoa(time.Now().Unix()) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// say sends ts|verb|arg|last from c's command connection; last defaults to
// c's session id.
func (c *client) say(verb, arg string, last ...string) {
	l := c.sid
	if len(last) > 0 {
		l = last[0]
	}
	c.raw(ts() + "|" + verb + "|" + arg + "|" + l)
}

func (c *client) raw(msg string) { c.cmd.put(msg) }

// next returns c's next reply within a second.
func (c *client) next() string {
	c.h.t.Helper()
	select {
	case m := <-c.cmd.out:
		return string(m)
	case <-time.After(5 * time.Second):
		c.h.t.Fatalf("%s: no reply within 5 s", c.user)
		return ""
	}
}

// expect reads c's next reply, checks its time is now and that the rest
// starts with want, and returns its fields.
func (c *client) expect(want string) []string {
	c.h.t.Helper()
	m := c.next()
	f := strings.Split(m, "|")
	if len(f) != 4 {
		c.h.t.Fatalf("%s: reply %q has %d fields", c.user, m, len(f))
	}
	st, _ := strconv.ParseInt(f[0], 10, 64)
	if d := time.Now().Unix() - st; d < -2 || d > 2 {
		c.h.t.Fatalf("%s: reply %q: server time off by %d s", c.user, m, d)
	}
	if rest := strings.Join(f[1:], "|"); !strings.HasPrefix(rest, want) {
		c.h.t.Fatalf("%s: got %q, want %q", c.user, rest, want)
	}
	return f
}

// sync is a barrier: c sends a lookup and reads replies up to its answer.
// Everything queued for c before it must come first, so sync returns the
// replies that came before, for the caller to check.
func (c *client) sync() []string {
	c.h.t.Helper()
	c.say("lookup", "barrier")
	var before []string
	for range 100 {
		m := c.next()
		if strings.HasSuffix(m, "|lookup|barrier|doesntexist") {
			return before
		}
		before = append(before, m)
	}
	c.h.t.Fatalf("%s: barrier never answered", c.user)
	return nil
}

// quiet checks that nothing was queued for c.
func (c *client) quiet() {
	c.h.t.Helper()
	if got := c.sync(); len(got) > 0 {
		c.h.t.Fatalf("%s: unexpected replies %q", c.user, got)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 5 s")
}
