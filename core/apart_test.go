package core

import (
	"bytes"
	"context"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/dtcall/dtcall/transport"
)

// goid is the calling goroutine's id, from its stack trace.
func goid() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	n, _ := strconv.ParseInt(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return n
}

// goids records the goroutines that called each of its methods.
type goids struct {
	mu  sync.Mutex
	ids map[string]map[int64]bool
}

func (g *goids) note(what string) {
	id := goid()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ids == nil {
		g.ids = make(map[string]map[int64]bool)
	}
	if g.ids[what] == nil {
		g.ids[what] = make(map[int64]bool)
	}
	g.ids[what][id] = true
}

// shared reports the goroutines that called both a and b.
func (g *goids) shared(a, b string) []int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var both []int64
	for id := range g.ids[a] {
		if g.ids[b][id] {
			both = append(both, id)
		}
	}
	return both
}

// noteAccounts notes who checks a password.
type noteAccounts struct {
	fakeAccounts
	g *goids
}

func (a noteAccounts) Authenticate(ctx context.Context, source netip.Addr, name, password string) error {
	a.g.note("check")
	return a.fakeAccounts.Authenticate(ctx, source, name, password)
}

// noteConn notes who reads.
type noteConn struct {
	*fakeConn
	g *goids
}

func (c noteConn) ReadMessage() ([]byte, error) {
	c.g.note("read message")
	return c.fakeConn.ReadMessage()
}
func (c noteConn) ReadMedia() ([]byte, error) { c.g.note("read media"); return c.fakeConn.ReadMedia() }

var _ transport.MediaConn = noteConn{}

// TestDeepWorkApart: the goroutine that reads a connection for its whole
// life does not also run the login (whose check, switchboard work and log
// lines would grow its stack for good), and a media connection's reader
// does not run the registration.
func TestDeepWorkApart(t *testing.T) {
	g := &goids{}
	h := newHarnessWith(t, Config{}, noteAccounts{testAccounts, g})
	cmd := newFakeConn("ip-alice")
	c := h.connectConn(cmd, noteConn{cmd, g})
	c.user = "alice"
	c.say("login", "alice", "a")
	c.sid = c.expect("resp|login|")[3]
	m := newFakeConn(cmd.origin)
	c.registerMediaConn(m, noteConn{m, g})
	c.say("lookup", "bob")
	c.expect("lookup|bob|")
	m.put("media")
	waitFor(t, func() bool { return len(g.shared("read media", "read media")) > 0 })
	cmd.drained(t)

	if ids := g.shared("read message", "check"); len(ids) > 0 {
		t.Errorf("goroutine %v reads commands and also checked the password", ids)
	}
	if ids := g.shared("read message", "read media"); len(ids) > 0 {
		t.Errorf("goroutine %v reads media and also read the registration", ids)
	}
}
