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
// from out; the core does the opposite. Its deadlines behave as net.Conn's:
// a deadline set while a read or write blocks applies to it at once.
type fakeConn struct {
	in     chan []byte
	out    chan []byte
	origin string
	dgram  bool
	// pace, if set, is how long each write waits before it is taken: a
	// client that reads slowly but steadily.
	pace time.Duration
	// closeGate, if set, makes Close block until it is closed, after the
	// connection is shut (as quic-go's CloseWithError waits for the
	// connection's run loop).
	closeGate  chan struct{}
	closeCalls atomic.Int64

	once    sync.Once
	closed  chan struct{}
	mu      sync.Mutex
	rdl     time.Time
	wdl     time.Time
	changed chan struct{} // closed and replaced when a deadline changes

	sent     atomic.Int64  // messages put
	handled  atomic.Int64  // messages the core returned for more after
	returned bool          // owned by the reader: the last read returned a message
	refused  atomic.Uint64 // the refusal code, if the core refused a registration
}

// put sends msg to the core; it reports false if the connection closed
// first.
func (c *fakeConn) put(msg string) bool {
	select {
	case c.in <- []byte(msg):
		c.sent.Add(1)
		return true
	case <-c.closed:
		return false
	}
}

// drained waits until the core has handled everything put on c: it has
// come back to read after the last message.
func (c *fakeConn) drained(t *testing.T) {
	t.Helper()
	waitFor(t, func() bool { return c.handled.Load() == c.sent.Load() })
}

func newFakeConn(origin string) *fakeConn {
	return &fakeConn{
		in: make(chan []byte, 64), out: make(chan []byte, 256), origin: origin,
		closed: make(chan struct{}), changed: make(chan struct{}),
	}
}

type timeoutError struct{}

func (timeoutError) Error() string { return "i/o timeout" }
func (timeoutError) Timeout() bool { return true }

// deadline returns the deadline *dl, a timer channel for it (nil for none;
// stop it with the returned func) and a channel closed when a deadline
// changes. expired reports a deadline that has passed.
func (c *fakeConn) deadline(dl *time.Time) (timer <-chan time.Time, stop func() bool, changed chan struct{}, expired bool) {
	c.mu.Lock()
	d, changed := *dl, c.changed
	c.mu.Unlock()
	if d.IsZero() {
		return nil, func() bool { return false }, changed, false
	}
	wait := time.Until(d)
	if wait <= 0 {
		return nil, nil, changed, true
	}
	t := time.NewTimer(wait)
	return t.C, t.Stop, changed, false
}

func (c *fakeConn) setDeadline(dl *time.Time, t time.Time) {
	c.mu.Lock()
	*dl = t
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *fakeConn) ReadMessage() ([]byte, error) {
	if c.returned {
		c.handled.Add(1)
		c.returned = false
	}
	for {
		timer, stop, changed, expired := c.deadline(&c.rdl)
		if expired {
			return nil, timeoutError{}
		}
		select {
		case m := <-c.in:
			stop()
			c.returned = true
			return m, nil
		case <-c.closed:
			stop()
			return nil, io.EOF
		case <-timer:
			return nil, timeoutError{}
		case <-changed:
			stop()
		}
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
	msg = append([]byte(nil), msg...)
	var paced <-chan time.Time
	if c.pace > 0 {
		t := time.NewTimer(c.pace)
		defer t.Stop()
		paced = t.C
	}
	for {
		if c.isClosed() {
			return io.ErrClosedPipe
		}
		timer, stop, changed, expired := c.deadline(&c.wdl)
		if expired {
			return timeoutError{}
		}
		out := c.out
		if paced != nil {
			out = nil // not yet taken
		}
		select {
		case <-paced:
			stop()
			paced = nil
		case out <- msg:
			stop()
			return nil
		case <-c.closed:
			stop()
			return io.ErrClosedPipe
		case <-timer:
			return timeoutError{}
		case <-changed:
			stop()
		}
	}
}

func (c *fakeConn) WriteMedia(p []byte) error { return c.WriteMessage(p) }

func (c *fakeConn) SetReadDeadline(t time.Time) error  { c.setDeadline(&c.rdl, t); return nil }
func (c *fakeConn) SetWriteDeadline(t time.Time) error { c.setDeadline(&c.wdl, t); return nil }
func (c *fakeConn) RemoteAddr() netip.AddrPort         { return netip.MustParseAddrPort("192.0.2.1:1") }

// Origin is the origin as an IP address if it is one (as the legacy front
// has it), else the name.
func (c *fakeConn) Origin() any {
	if a, err := netip.ParseAddr(c.origin); err == nil {
		return a
	}
	return c.origin
}
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

func (c *fakeConn) Close() error {
	c.closeCalls.Add(1)
	c.shut()
	if c.closeGate != nil {
		<-c.closeGate
	}
	return nil
}

// shut ends the connection as its peer going away would: reads and
// writes fail. It never blocks.
func (c *fakeConn) shut() { c.once.Do(func() { close(c.closed) }) }

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

var testAccounts = fakeAccounts{"alice": "a", "bob": "b", "carol": "c", "dave": "d", "erin": "e"}

func newHarness(t *testing.T, cfg Config) *harness {
	return newHarnessWith(t, cfg, testAccounts)
}

// newHarnessWith is newHarness serving accts.
func newHarnessWith(t *testing.T, cfg Config, accts Accounts) *harness {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return newHarnessLog(t, cfg, accts, log)
}

// newHarnessLog is newHarnessWith logging to log.
func newHarnessLog(t *testing.T, cfg Config, accts Accounts, log *slog.Logger) *harness {
	h := &harness{t: t}
	h.srv = New(cfg, accts, log)
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // don't wait for calls to end
		h.srv.Shutdown(ctx)
		h.wg.Wait()
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		if len(h.srv.logq) > 0 {
			t.Errorf("log lines queued under the lock and never written: %v", h.srv.logq)
		}
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
	return h.connectConn(newFakeConn(origin), nil)
}

// connectConn serves cmd as a command channel; conn, if not nil, is what
// the core is handed (a wrapper of cmd).
func (h *harness) connectConn(cmd *fakeConn, conn transport.Conn) *client {
	if conn == nil {
		conn = cmd
	}
	c := &client{h: h, cmd: cmd}
	h.wg.Go(func() { h.srv.ServeCommand(context.Background(), conn) })
	return c
}

// login connects, logs user in and registers media.
func (h *harness) login(user string) *client {
	h.t.Helper()
	return h.loginWith(user, func(*fakeConn) {})
}

// loginWith is login with both of the client's connections set up by
// prep before use.
func (h *harness) loginWith(user string, prep func(*fakeConn)) *client {
	h.t.Helper()
	cmd := newFakeConn("ip-" + user)
	prep(cmd)
	c := h.connectConn(cmd, nil)
	c.user = user
	c.say("login", user, testAccounts[user])
	f := c.expect("resp|login|")
	c.sid = f[3]
	m := newFakeConn(c.cmd.origin)
	prep(m)
	c.registerMediaConn(m, m)
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
