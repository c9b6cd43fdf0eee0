//go:build linux

package tcp

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dtcall/dtcall/transport/transporttest"
)

// acceptLoopConn accepts one connection on ln as the front does for
// crypto/tls (over a try socket), with loops to join.
func acceptLoopConn(t *testing.T, ln net.Listener, pair tls.Certificate, loops *loopSet) *recordConn {
	t.Helper()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sc := tls.Server(newTrySocket(raw, raw), &tls.Config{Certificates: []tls.Certificate{pair}})
	if err := sc.Handshake(); err != nil {
		raw.Close()
		t.Fatal(err)
	}
	c := newRecordConn(sc, raw)
	c.push.loops = loops
	return c
}

// pushInBackground runs c.PushMedia and hands on what it delivers and
// what it returns.
func pushInBackground(c *recordConn, idle time.Duration) (<-chan string, <-chan error) {
	got := make(chan string, 100)
	ended := make(chan error, 1)
	go func() {
		ended <- c.PushMedia(idle, func(p []byte) { got <- string(p) })
	}()
	return got, ended
}

// TestMediaLoopReadsRecords: a connection in a loop gets its records
// delivered in order, with the ones the registration's read took along,
// without the lone "D" keepalives, also when several come in one segment;
// its socket has left the runtime's poller; writes reach the client; a
// deadline in the past ends it at once, and Close closes the socket.
func TestMediaLoopReadsRecords(t *testing.T) {
	pair, ln := tlsTestListener(t)
	var loops loopSet
	defer loops.close()
	c, tc := loopPair(t, ln, pair, &loops, nil)
	for _, rec := range []string{"registration", "early"} {
		tc.Write([]byte(rec))
	}
	if reg, err := c.ReadMessage(); err != nil || string(reg) != "registration" {
		t.Fatalf("registration: %q, %v", reg, err)
	}
	time.Sleep(50 * time.Millisecond) // "early" is in crypto/tls's buffer now, not the socket's
	got, ended := pushInBackground(c, time.Minute)
	want := []string{"early", "one", "two", "three"}
	tc.Write([]byte("one"))
	tc.Write([]byte("D"))
	tc.Write([]byte("two"))
	tc.Write([]byte("three"))
	transporttest.ExpectDelivered(t, got, want...)
	if c.try.det.Load() == nil {
		t.Fatal("the socket was not detached into the loop")
	}
	if err := c.WriteMedia([]byte("to the client")); err != nil {
		t.Fatal(err)
	}
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	if n, err := tc.Read(buf); err != nil || string(buf[:n]) != "to the client" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}
	c.SetReadDeadline(time.Unix(1, 0)) // the core's closed mark
	select {
	case err := <-ended:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("ended with %v, want the deadline", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a deadline in the past did not end the push")
	}
	c.Close()
	if _, err := tc.Read(buf); err != io.EOF {
		t.Fatalf("client read after Close: %v, want EOF", err)
	}
}

// TestMediaLoopIdleTimeout: a connection in a loop that sends nothing for
// its idle time ends with a timeout; one whose records keep coming does
// not.
func TestMediaLoopIdleTimeout(t *testing.T) {
	pair, ln := tlsTestListener(t)
	var loops loopSet
	defer loops.close()
	const idle = 300 * time.Millisecond
	var wg sync.WaitGroup
	defer wg.Wait()
	client := make(chan *tls.Conn, 1)
	wg.Go(func() { client <- handshaken(dialTestClient(t, ln, nil)) })
	c := acceptLoopConn(t, ln, pair, &loops)
	defer c.Close()
	tc := <-client
	if tc == nil {
		t.FailNow()
	}
	defer tc.Close()
	_, ended := pushInBackground(c, idle)
	start := time.Now()
	for range 10 { // 1 s of records every 100 ms
		time.Sleep(idle / 3)
		if _, err := tc.Write([]byte("frame")); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-ended:
			t.Fatalf("ended after %v while records came: %v", time.Since(start), err)
		default:
		}
	}
	quiet := time.Now()
	select {
	case err := <-ended:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("ended with %v, want a timeout", err)
		}
		if d := time.Since(quiet); d < idle-idle/3 || d > 3*idle {
			t.Fatalf("ended %v after the last record; idle is %v", d, idle)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a silent connection in a loop never timed out")
	}
}

// TestMediaLoopStalledReceiver: a write to a detached socket whose client
// reads nothing waits for room, not forever: it fails at its write
// deadline, and the loop serves other connections meanwhile.
func TestMediaLoopStalledReceiver(t *testing.T) {
	pair, ln := tlsTestListener(t)
	var loops loopSet
	defer loops.close()
	var conns []*recordConn
	var clients []*tls.Conn
	for range 2 {
		c, tc := loopPair(t, ln, pair, &loops, nil)
		conns = append(conns, c)
		clients = append(clients, tc)
	}
	stalled, talking := conns[0], conns[1]
	defer stalled.Close()
	defer talking.Close()
	_, stalledEnded := pushInBackground(stalled, time.Minute)
	got, _ := pushInBackground(talking, time.Minute)
	clients[0].Write([]byte("join")) // wait until both are in a loop
	clients[1].Write([]byte("join"))
	if g := <-got; g != "join" {
		t.Fatalf("delivered %q", g)
	}
	for stalled.try.det.Load() == nil {
		time.Sleep(time.Millisecond)
	}
	stalled.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
	block := make([]byte, 16000)
	var err error
	start := time.Now()
	for i := 0; i < 4000 && err == nil; i++ { // 64 MB: far beyond the socket buffers
		err = stalled.WriteMedia(block)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("writes to a client that reads nothing: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the write took %v to time out", d)
	}
	clients[1].Write([]byte("still served"))
	select {
	case g := <-got:
		if g != "still served" {
			t.Fatalf("delivered %q", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the loop stopped serving while a receiver stalled")
	}
	stalled.Close()
	if err := <-stalledEnded; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the stalled connection's push ended with %v", err)
	}
}

// handshaken shakes hands on tc, nil or not.
func handshaken(tc *tls.Conn) *tls.Conn {
	if tc != nil && tc.Handshake() != nil {
		tc.Close()
		return nil
	}
	return tc
}

// loopPair connects a client (its raw connection wrapped by wrap unless
// nil) to ln and accepts it with acceptLoopConn; the client is closed when
// t ends, the server side is the caller's.
func loopPair(t *testing.T, ln net.Listener, pair tls.Certificate, loops *loopSet, wrap func(net.Conn) net.Conn) (*recordConn, *tls.Conn) {
	t.Helper()
	client := make(chan *tls.Conn, 1)
	go func() { client <- handshaken(dialTestClient(t, ln, wrap)) }()
	c := acceptLoopConn(t, ln, pair, loops)
	tc := <-client
	if tc == nil {
		c.Close()
		t.FailNow()
	}
	t.Cleanup(func() { tc.Close() })
	return c, tc
}

// TestMediaLoopHeldBound attacks maxHeld: records written to a detached
// socket whose client reads nothing, without waiting for them to go (as
// crypto/tls's own alerts and key updates are), are held up to maxHeld,
// and the next one fails instead of growing the memory.
func TestMediaLoopHeldBound(t *testing.T) {
	pair, ln := tlsTestListener(t)
	var loops loopSet
	defer loops.close()
	c, _ := loopPair(t, ln, pair, &loops, nil)
	defer c.Close()
	pushInBackground(c, time.Minute)
	for c.try.det.Load() == nil {
		time.Sleep(time.Millisecond)
	}
	block := make([]byte, 1000)
	var err error
	writes := 0
	for ; writes < 100000 && err == nil; writes++ { // 100 MB at most
		_, err = c.sc.Write(block)
	}
	c.try.mu.Lock()
	held := len(c.try.held)
	c.try.mu.Unlock()
	if err == nil || held > maxHeld {
		t.Fatalf("after %d writes: %v, %d bytes held (bound %d)", writes, err, held, maxHeld)
	}
	t.Logf("the write after %d KB failed (%v) with %d bytes held", writes, err, held)
}

// corkedConn collects what its TLS client writes while corked and sends it
// in one write at uncork, so that a burst of records reaches the server's
// socket all at once.
type corkedConn struct {
	net.Conn
	mu    sync.Mutex
	cork  bool
	batch []byte
}

func (c *corkedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cork {
		c.batch = append(c.batch, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *corkedConn) setCork(on bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cork = on
	if on || len(c.batch) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.batch)
	c.batch = nil
	return err
}

// TestMediaLoopFairRounds attacks recordsPerRound: a client that puts a
// burst of 400 records on its socket at once does not make its loop's
// other connections wait for the whole burst. A record of the other
// connection, on its socket while the loop reads the burst, is delivered
// after one round of the flooder's records (recordsPerRound), not after
// the burst.
func TestMediaLoopFairRounds(t *testing.T) {
	const burst = 400
	pair, ln := tlsTestListener(t)
	// One loop for both connections (a loopSet has one per two cores).
	l, err := newMediaLoop()
	if err != nil {
		t.Fatal(err)
	}
	loops := loopSet{loops: []*mediaLoop{l}}
	defer loops.close()
	var corked *corkedConn
	flooder, fc := loopPair(t, ln, pair, &loops, func(raw net.Conn) net.Conn {
		corked = &corkedConn{Conn: raw}
		return corked
	})
	defer flooder.Close()
	other, oc := loopPair(t, ln, pair, &loops, nil)
	defer other.Close()

	// The flooder's first record holds the loop until the other
	// connection's record is on its socket too, so that the loop has both
	// to read however the goroutines are scheduled.
	otherWritten := make(chan struct{})
	var closeOnce sync.Once
	defer closeOnce.Do(func() { close(otherWritten) })
	var mu sync.Mutex
	var order []string
	record := func(who string) func([]byte) {
		return func(p []byte) {
			if who == "flood" {
				<-otherWritten
			}
			mu.Lock()
			order = append(order, who)
			mu.Unlock()
		}
	}
	go flooder.PushMedia(time.Minute, record("flood"))
	go other.PushMedia(time.Minute, record("other"))
	for flooder.try.det.Load() == nil || other.try.det.Load() == nil {
		time.Sleep(time.Millisecond)
	}

	corked.setCork(true)
	frame := make([]byte, 32)
	for range burst {
		fc.Write(frame)
	}
	if err := corked.setCork(false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the loop reads the first record and waits in it
	if _, err := oc.Write([]byte("other")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the record reaches the server's socket
	closeOnce.Do(func() { close(otherWritten) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(order)
		mu.Unlock()
		if n == burst+1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	before := slices.Index(order, "other")
	if len(order) != burst+1 || before < 0 {
		t.Fatalf("delivered %d records (want %d), the other connection's at %d", len(order), burst+1, before)
	}
	t.Logf("the other connection's record came after %d of the flooder's %d (bound %d)", before, burst, recordsPerRound)
	if before > recordsPerRound {
		t.Errorf("the other connection's record waited for %d of the flooder's records, want at most %d", before, recordsPerRound)
	}
}
