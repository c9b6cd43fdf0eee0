package client_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/internal/testserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is one core with both fronts on 127.0.0.1: the legacy TLS pair
// and QUIC.
type server struct {
	*testserver.Server
	commandPort, mediaPort, quicPort int
	certFile                         string
	der                              []byte // the leaf, for pins
	core                             *core.Server
	dhe                              bool // the legacy front serves DHE-only clients (cgo build)
}

// startServer runs a server until the end of t.
func startServer(t testing.TB, ccfg core.Config) *server {
	t.Helper()
	return startServerWith(t, testserver.Config{Core: ccfg})
}

// startServerWith runs a server with cfg (a certificate of the test's,
// say) until the end of t.
func startServerWith(t testing.TB, cfg testserver.Config) *server {
	t.Helper()
	ts := testserver.Start(t, cfg)
	return &server{
		Server:      ts,
		commandPort: ts.CommandPort, mediaPort: ts.MediaPort, quicPort: ts.QUICPort,
		certFile: ts.Cert.CertFile, der: ts.Cert.DER,
		core: ts.Core, dhe: ts.Legacy.DHEAvailable(),
	}
}

// options are the client options for this server, pinned by file.
func (s *server) options(tr client.Transport) client.Options {
	return client.Options{
		Server:      "127.0.0.1",
		CommandPort: s.commandPort,
		MediaPort:   s.mediaPort,
		QUICPort:    s.quicPort,
		Transport:   tr,
		PinFile:     s.certFile,
		Timeout:     10 * time.Second,
	}
}

// dial connects a client, closed at the end of t.
func (s *server) dial(t testing.TB, o client.Options) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), o)
	if err != nil {
		t.Fatalf("dial %v: %v", o.Transport, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// online logs user in over tr and registers media.
func (s *server) online(t testing.TB, user string, tr client.Transport) *client.Client {
	t.Helper()
	c := s.dial(t, s.options(tr))
	ctx := context.Background()
	if err := c.Login(ctx, user, "pw-"+user); err != nil {
		t.Fatalf("%s: login: %v", user, err)
	}
	if err := c.RegisterMedia(ctx); err != nil {
		t.Fatalf("%s: register media: %v", user, err)
	}
	return c
}

// expectEvent waits for c's next event and checks it.
func expectEvent(t testing.TB, c *client.Client, kind client.EventKind, peer string) client.Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatalf("%s: events closed (%v), want %v %s", c.User(), c.Err(), kind, peer)
		}
		if ev.Kind != kind || ev.Peer != peer {
			t.Fatalf("%s: got event %v, want %v %s", c.User(), ev, kind, peer)
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no event, want %v %s", c.User(), kind, peer)
	}
	return client.Event{}
}

// noEvent checks that no event is waiting for c.
func noEvent(t testing.TB, c *client.Client) {
	t.Helper()
	select {
	case ev := <-c.Events():
		t.Fatalf("%s: unexpected event %v", c.User(), ev)
	default:
	}
}

// call makes a call b and b accept.
func call(t testing.TB, a, b *client.Client) {
	t.Helper()
	ctx := context.Background()
	res, err := a.Call(ctx, b.User())
	if err != nil || res != client.Available {
		t.Fatalf("%s calls %s: %v, %v", a.User(), b.User(), res, err)
	}
	expectEvent(t, b, client.Incoming, a.User())
	if err := b.Accept(ctx, a.User()); err != nil {
		t.Fatalf("%s accepts: %v", b.User(), err)
	}
	expectEvent(t, a, client.Started, b.User())
	expectEvent(t, b, client.Started, a.User())
}

// frames returns n 32-byte AMR-sized frames numbered from first.
func frames(first, n int) []byte {
	var b bytes.Buffer
	for i := first; i < first+n; i++ {
		f := fmt.Sprintf("frame-%06d|", i)
		b.WriteString(f + strings.Repeat(".", 32-len(f)))
	}
	return b.Bytes()
}

// sendFrames writes 32-byte frames one at a time.
func sendFrames(t testing.TB, c *client.Client, b []byte) {
	t.Helper()
	for len(b) > 0 {
		n := min(32, len(b))
		if err := c.Media().WriteMedia(b[:n]); err != nil {
			t.Fatalf("%s: write media: %v", c.User(), err)
		}
		b = b[n:]
	}
}

// readMedia reads media until n bytes have arrived.
func readMedia(t testing.TB, c *client.Client, n int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []byte
	for len(got) < n {
		b, err := c.Media().ReadMedia(ctx)
		if err != nil {
			t.Fatalf("%s: read media after %d of %d bytes: %v", c.User(), len(got), n, err)
		}
		got = append(got, b...)
	}
	return got
}

// exchange sends media both ways in groups that fit the relay's queue
// (it drops the oldest chunk when a burst outruns a receiver) and checks
// that it arrives byte-exact.
func exchange(t testing.TB, a, b *client.Client, groups int) {
	t.Helper()
	for g := range groups {
		want := frames(g*8, 8)
		sendFrames(t, a, want)
		if got := readMedia(t, b, len(want)); !bytes.Equal(got, want) {
			t.Fatalf("media %s→%s group %d: got %q, want %q", a.User(), b.User(), g, got, want)
		}
		want = frames(1000+g*8, 8)
		sendFrames(t, b, want)
		if got := readMedia(t, a, len(want)); !bytes.Equal(got, want) {
			t.Fatalf("media %s→%s group %d: got %q, want %q", b.User(), a.User(), g, got, want)
		}
	}
}

// quiet checks that nothing is pending for c: a lookup answers at once and
// no event waits.
func quiet(t testing.TB, c *client.Client) {
	t.Helper()
	if ok, err := c.Lookup(context.Background(), c.User()); err != nil || !ok {
		t.Fatalf("%s: lookup of self: %v, %v", c.User(), ok, err)
	}
	noEvent(t, c)
}

// tb lets examples use the helpers: a testing.TB outside a test, whose
// Fatal panics and whose cleanups run on close.
type tb struct {
	testing.TB // nil: only the methods below are called
	mu         sync.Mutex
	cleanups   []func()
}

func (t *tb) Helper()                        {}
func (t *tb) Fatal(args ...any)              { panic(fmt.Sprint(args...)) }
func (t *tb) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
func (t *tb) Cleanup(f func())               { t.mu.Lock(); t.cleanups = append(t.cleanups, f); t.mu.Unlock() }
func (t *tb) TempDir() string {
	d, err := os.MkdirTemp("", "dtcall-example")
	if err != nil {
		panic(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (t *tb) close() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

// exampleServer starts a server for an example; stop stops it.
func exampleServer() (s *server, stop func()) {
	t := &tb{}
	return startServer(t, core.Config{}), t.close
}
