package tcp_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ztls "github.com/zmap/zcrypto/tls"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/transport/tcp"
	"github.com/dtcall/dtcall/transport/tcp/clienthello"
)

// captureHello returns the ClientHello records a client of kind sends.
func captureHello(t testing.TB, kind tlsKind) []byte {
	t.Helper()
	client, server := net.Pipe()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		defer client.Close()
		if kind == android17 {
			_ = ztls.Client(client, &ztls.Config{
				InsecureSkipVerify: true, CipherSuites: []uint16{suiteDHE}, ForceSuites: true,
				MinVersion: ztls.VersionTLS12, MaxVersion: ztls.VersionTLS12,
			}).Handshake()
			return
		}
		_ = tls.Client(client, &tls.Config{InsecureSkipVerify: true}).Handshake()
	})
	defer server.Close()
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, raw, err := clienthello.Read(server, 0)
	if err != nil {
		t.Fatalf("capture the %v ClientHello: %v", kind, err)
	}
	return raw
}

// dialFrom opens a TCP connection to addr from the local address from,
// closed at cleanup.
func dialFrom(t testing.TB, addr, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// stall is a connection that begins a handshake and then stops.
type stall struct {
	name      string
	send      func(dhe, modern []byte) []byte // what the client sends, then nothing
	readFirst bool                            // wait for the server's first flight
}

var stalls = []stall{
	{"silent", func(_, _ []byte) []byte { return nil }, false},
	{"half a ClientHello", func(_, m []byte) []byte { return m[:len(m)/2] }, false},
	{"DHE after the ClientHello", func(d, _ []byte) []byte { return d }, true},
	{"crypto/tls after the ClientHello", func(_, m []byte) []byte { return m }, true},
}

// openStalls opens n connections of each stall kind to addr from
// 127.0.0.2, 127.0.0.3, ... (at most 4 per source, under the per-source
// cap) and returns them once the server has answered each one that gets
// an answer.
func openStalls(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	dheHello, modernHello := captureHello(t, android17), captureHello(t, modern)
	var conns []net.Conn
	for i := range n * len(stalls) {
		st := stalls[i%len(stalls)]
		c := dialFrom(t, addr, fmt.Sprintf("127.0.0.%d", 2+i/4))
		if b := st.send(dheHello, modernHello); len(b) > 0 {
			if _, err := c.Write(b); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
		if st.readFirst {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err != nil {
				t.Fatalf("%s: no answer to the ClientHello: %v", st.name, err)
			}
		}
		conns = append(conns, c)
	}
	return conns
}

// timeLogin dials the command port with kind's TLS, logs alice in and
// returns how long it took.
func timeLogin(t *testing.T, e *env, kind tlsKind) time.Duration {
	t.Helper()
	start := time.Now()
	c, err := e.dial(e.cmdAddr, kind, "127.0.0.1")
	if err != nil {
		t.Fatalf("legitimate %v dial: %v (after %v)", kind, err, time.Since(start))
	}
	defer c.Close()
	p := &phone{t: t, e: e, user: "alice", kind: kind, cmd: c}
	p.login("pw-alice")
	return time.Since(start)
}

// Handshakes that stall (a silent client, half a ClientHello, after the
// ClientHello on each engine), more of them than the DHE engine has slots,
// from a few sources, do not delay a legitimate handshake and login.
func TestStalledHandshakesDoNotDelayOthers(t *testing.T) {
	e := start(t, core.Config{}, tcp.Config{})
	n := 2*runtime.GOMAXPROCS(0) + 2 // of each kind: more than the DHE slots
	kinds := []tlsKind{android17, modern}
	alone := map[tlsKind]time.Duration{}
	for _, k := range kinds {
		timeLogin(t, e, k) // warm up
		alone[k] = timeLogin(t, e, k)
	}
	conns := openStalls(t, e.cmdAddr, n)
	if got := e.front.Stats().Handshaking; got != len(conns) {
		t.Fatalf("%d connections shaking hands, want the %d stalled ones", got, len(conns))
	}
	for _, k := range kinds {
		var times []time.Duration
		for range 5 {
			times = append(times, timeLogin(t, e, k))
		}
		slices.Sort(times)
		t.Logf("%v dial+login with %d stalled handshakes from %d sources: median of 5 %v, worst %v (alone %v)",
			k, len(conns), (len(conns)+3)/4, times[2], times[4], alone[k])
		// The median: a loaded machine may stall any one login; a stalled
		// handshake that held a DHE slot delayed every one by seconds.
		if times[2] > time.Second {
			t.Errorf("%v dial+login took %v with stalled handshakes pending", k, times)
		}
	}
	// The stalled connections were still open all along.
	if got := e.front.Stats().Handshaking; got != len(conns) {
		t.Errorf("%d connections shaking hands at the end, want %d", got, len(conns))
	}
}

// gateFunc is a transport.Gate.
type gateFunc func(netip.Addr) bool

func (f gateFunc) Allow(a netip.Addr) bool { return f(a) }

// A source the gate refuses is closed right after accept, before any TLS
// work, on both ports; other sources are served.
func TestGateRefusesBeforeTLS(t *testing.T) {
	var mu sync.Mutex
	var asked []netip.Addr
	banned := netip.MustParseAddr("127.0.0.2")
	gate := gateFunc(func(a netip.Addr) bool {
		mu.Lock()
		asked = append(asked, a)
		mu.Unlock()
		return a != banned
	})
	e := start(t, core.Config{}, tcp.Config{Gate: gate})
	for _, addr := range []string{e.cmdAddr, e.mediaAddr} {
		c := dialFrom(t, addr, "127.0.0.2")
		c.Write(captureHello(t, modern)) // may fail: the server may have closed already
		start := time.Now()
		expectClosed(t, c)
		if d := time.Since(start); d > time.Second {
			t.Errorf("refused connection closed after %v", d)
		}
		if _, err := e.dial(addr, modern, "127.0.0.2"); err == nil {
			t.Fatal("TLS handshake from a refused source succeeded")
		}
	}
	timeLogin(t, e, android17)
	timeLogin(t, e, modern)
	st := e.front.Stats()
	if st.Refused[tcp.RefusedGate] != 4 {
		t.Errorf("refused %d connections as banned, want 4", st.Refused[tcp.RefusedGate])
	}
	if n := st.Handshakes[tcp.EngineGo][tcp.HandshakeFailed]; n != 0 {
		t.Errorf("a refused connection counted as a failed handshake (%d)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(asked, banned) || !slices.Contains(asked, netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("gate was asked about %v", asked)
	}
}

// holdsOpen checks that the server has not closed c: a read times out.
func holdsOpen(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("connection closed: %v", err)
	}
}

// waitHandshaking waits until the front counts n connections shaking hands.
func waitHandshaking(t *testing.T, e *env, n int) {
	t.Helper()
	for range 500 {
		if e.front.Stats().Handshaking == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d connections shaking hands, want %d", e.front.Stats().Handshaking, n)
}

// A source with MaxHandshakesPerSource connections shaking hands (on both
// ports together) gets its next one closed at once; other sources are
// served, and the source may connect again once one of its handshakes ends.
func TestHandshakeCapPerSource(t *testing.T) {
	e := start(t, core.Config{}, tcp.Config{MaxHandshakesPerSource: 3})
	held := []net.Conn{
		dialFrom(t, e.cmdAddr, "127.0.0.2"),
		dialFrom(t, e.mediaAddr, "127.0.0.2"),
		dialFrom(t, e.cmdAddr, "127.0.0.2"),
	}
	waitHandshaking(t, e, 3)
	extra := dialFrom(t, e.mediaAddr, "127.0.0.2")
	start := time.Now()
	expectClosed(t, extra)
	if d := time.Since(start); d > time.Second {
		t.Errorf("connection over the cap closed after %v", d)
	}
	for _, c := range held {
		holdsOpen(t, c)
	}
	if d := timeLogin(t, e, android17); d > time.Second {
		t.Errorf("login from another source took %v", d)
	}
	held[0].Close()
	waitHandshaking(t, e, 2)
	again := dialFrom(t, e.cmdAddr, "127.0.0.2")
	waitHandshaking(t, e, 3)
	holdsOpen(t, again)
	if n := e.front.Stats().Refused[tcp.RefusedPerSource]; n != 1 {
		t.Errorf("refused %d connections over the per-source cap, want 1", n)
	}
}

// At MaxHandshakes connections shaking hands, a new one is served and the
// oldest one is cut to make room: silent connections from many sources
// cannot lock legitimate clients out.
func TestHandshakeCapTotalCutsOldest(t *testing.T) {
	e := start(t, core.Config{}, tcp.Config{MaxHandshakes: 4})
	var held []net.Conn
	for i := range 4 {
		held = append(held, dialFrom(t, e.cmdAddr, fmt.Sprintf("127.0.0.%d", 2+i)))
		waitHandshaking(t, e, i+1) // in this order
	}
	if d := timeLogin(t, e, modern); d > time.Second {
		t.Errorf("login at the total cap took %v", d)
	}
	expectClosed(t, held[0])
	for _, c := range held[1:] {
		holdsOpen(t, c)
	}
	held = append(held, dialFrom(t, e.cmdAddr, "127.0.0.6")) // back at the cap
	waitHandshaking(t, e, 4)
	if d := timeLogin(t, e, android17); d > time.Second {
		t.Errorf("second login at the total cap took %v", d)
	}
	expectClosed(t, held[1])
	for _, c := range held[2:] {
		holdsOpen(t, c)
	}
	if n := e.front.Stats().Refused[tcp.RefusedEvicted]; n != 2 {
		t.Errorf("cut %d connections at the total cap, want 2", n)
	}
}

// Close while connections pour in: every goroutine is counted before it
// starts (the race detector and goleak would catch a miss), and Close
// returns.
func TestCloseWhileAccepting(t *testing.T) {
	for range 5 {
		e := start(t, core.Config{}, tcp.Config{})
		var dialed atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				for range 200 {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.DialTimeout("tcp", e.cmdAddr, time.Second)
					if err != nil {
						continue
					}
					dialed.Add(1)
					c.Close()
				}
			})
		}
		for dialed.Load() < 20 {
			time.Sleep(time.Millisecond)
		}
		e.front.Close()
		close(stop)
		wg.Wait()
	}
}

// errListener is a listener whose Accept fails with the errors in errs,
// then with err for good.
type errListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
	err  error
}

func (l *errListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		return nil, err
	}
	return nil, l.err
}

// Serve retries an accept error that may pass (out of file descriptors)
// and returns one that will not; after Close it returns nil.
func TestServeReturnsAcceptError(t *testing.T) {
	e := start(t, core.Config{}, tcp.Config{})
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept", syscall.EMFILE)}
	bad := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept", syscall.EINVAL)}
	ln := &errListener{Listener: listen(t), errs: []error{emfile, emfile}, err: bad}
	done := make(chan error, 1)
	go func() { done <- e.front.ServeCommand(ln) }()
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("ServeCommand = %v, want the EINVAL accept error", err)
		}
		ln.mu.Lock()
		left := len(ln.errs)
		ln.mu.Unlock()
		if left != 0 {
			t.Errorf("%d EMFILE errors not retried", left)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeCommand did not return")
	}
	ln2 := listen(t)
	go func() { done <- e.front.ServeMedia(ln2) }()
	time.Sleep(50 * time.Millisecond)
	e.front.CloseListeners()
	if err := <-done; err != nil {
		t.Fatalf("ServeMedia after CloseListeners = %v, want nil", err)
	}
}
