//go:build cgo && !nodhe

package dhe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// isTimeoutErr reports whether err is a deadline: raw's, or ctx's.
func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestHandshakeCap: with every slot busy (OpenSSL working on other
// handshakes), a handshake waits for one until its ctx ends; a ctx that has
// ended already fails at once.
func TestHandshakeCap(t *testing.T) {
	srv, _ := newServer(t, Config{MaxHandshakes: 1})
	hello := captureHello(t)
	srv.slots <- struct{}{} // the only slot: busy

	// B waits for a slot until its ctx ends; its conn is closed untouched.
	bClient, bServer := tcpPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := srv.Handshake(ctx, bServer, hello)
	if elapsed := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || elapsed < 250*time.Millisecond || elapsed > 5*time.Second {
		t.Fatalf("B: Handshake = %v after %v, want a slot-wait deadline after 300ms", err, elapsed)
	}
	if !strings.Contains(err.Error(), "handshake slot") {
		t.Errorf("B: error %q does not say it waited for a slot", err)
	}
	_ = bClient.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := bClient.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("B's conn: read %d, %v; want EOF (closed, nothing sent)", n, err)
	}

	// C: a context that has already ended fails at once.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	_, cServer := tcpPair(t)
	if _, err := srv.Handshake(done, cServer, hello); !errors.Is(err, context.Canceled) {
		t.Fatalf("C: Handshake with a cancelled ctx = %v", err)
	}

	// The slot frees and a real client gets through.
	srv.slots.release()
	ts := startServer(t, srv, echo)
	roundTrip(t, dial(t, ts.addr()), []byte("after"))
}

// TestStalledHandshakesHoldNoSlot: clients that send their ClientHello, get
// the server's flight and then stall hold no slot, however many they are:
// a real client's handshake is not delayed. (They used to hold their slot
// until the handshake deadline.)
func TestStalledHandshakesHoldNoSlot(t *testing.T) {
	srv, _ := newServer(t, Config{}) // 2*GOMAXPROCS slots
	hello := captureHello(t)
	ts := startServer(t, srv, echo)
	timeHandshake(t, ts.addr()) // warm-up: zcrypto's first handshake is slow
	alone := timeHandshake(t, ts.addr())
	stalled := 2*cap(srv.slots) + 2
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var g errgroup.Group
	for i := range stalled {
		client, server := tcpPair(t)
		g.Go(func() error {
			_, err := srv.Handshake(ctx, server, hello)
			if err == nil {
				return fmt.Errorf("stalled handshake %d succeeded", i)
			}
			return nil
		})
		// The server's first flight proves the handshake got past OpenSSL's
		// first step; the client then sends nothing more.
		_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := client.Read(make([]byte, 1)); err != nil {
			t.Fatalf("stalled client %d got no ServerHello: %v", i, err)
		}
	}
	var times []time.Duration
	for range 5 {
		times = append(times, timeHandshake(t, ts.addr()))
	}
	slices.Sort(times)
	t.Logf("DHE handshake with %d stalled handshakes pending (%d slots): median of 5 %v, worst %v (alone %v)",
		stalled, cap(srv.slots), times[2], times[4], alone)
	// The median: a loaded machine may stall any one handshake; a held slot
	// stalls every one until the stalled handshakes time out (30 s here).
	if times[2] > time.Second {
		t.Errorf("DHE handshakes took %v with %d stalled handshakes pending", times, stalled)
	}
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// timeHandshake dials addr and returns how long the DHE handshake took.
func timeHandshake(t *testing.T, addr string) time.Duration {
	t.Helper()
	start := time.Now()
	c := dial(t, addr)
	d := time.Since(start)
	c.Close()
	return d
}

func TestHandshakeDeadline(t *testing.T) {
	srv, _ := newServer(t, Config{})
	hello := captureHello(t)
	tests := []struct {
		name   string
		prefix []byte // what the sniffer read; the client then sends nothing more
	}{
		{"silent", nil},
		{"partial-hello", hello[:30]},
		{"stalls-after-hello", hello},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := tcpPair(t)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := srv.Handshake(ctx, server, tt.prefix)
			elapsed := time.Since(start)
			if !isTimeoutErr(err) || elapsed < 250*time.Millisecond || elapsed > 5*time.Second {
				t.Fatalf("Handshake = %v after %v, want a timeout after 300ms", err, elapsed)
			}
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.Copy(io.Discard, client); err != nil {
				t.Fatalf("server did not close the conn: %v", err)
			}
		})
	}
	t.Run("cancel", func(t *testing.T) {
		_, server := tcpPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := srv.Handshake(ctx, server, hello)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Handshake = %v, want context.Canceled", err)
		}
	})
}

func TestCloseUnblocksReadAndWrite(t *testing.T) {
	srv, _ := newServer(t, Config{})
	conns := make(chan *Conn, 1)
	release := make(chan struct{})
	ts := startServer(t, srv, func(c *Conn) {
		conns <- c
		<-release
	})
	defer close(release)
	dial(t, ts.addr()) // then never reads nor writes
	c := <-conns

	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 64))
		readErr <- err
	}()
	writeErr := make(chan error, 1)
	go func() {
		chunk := bytes.Repeat([]byte("v"), 16384)
		for range 10000 { // far more than the socket buffers hold
			if _, err := c.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- errors.New("writes never blocked")
	}()
	time.Sleep(200 * time.Millisecond) // let both block
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, ch := range map[string]chan error{"Read": readErr, "Write": writeErr} {
		select {
		case err := <-ch:
			if err == nil {
				t.Errorf("%s returned no error after Close", name)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still blocked 5s after Close", name)
		}
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Close and unblocking took %v", elapsed)
	}
}

func TestReadTimeoutIsRetryable(t *testing.T) {
	srv, _ := newServer(t, Config{})
	result := make(chan error, 1)
	ts := startServer(t, srv, func(c *Conn) {
		result <- func() error {
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			buf := make([]byte, 64)
			if _, err := c.Read(buf); !isTimeoutErr(err) {
				return fmt.Errorf("first Read = %v, want timeout", err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != "late" {
				return fmt.Errorf("Read after timeout = %q, %v", buf[:n], err)
			}
			return nil
		}()
	})
	c := dial(t, ts.addr())
	time.Sleep(300 * time.Millisecond)
	if _, err := c.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != nil {
		t.Fatal(err)
	}
}

func TestServerCloseKeepsConns(t *testing.T) {
	srv, _ := newServer(t, Config{})
	ts := startServer(t, srv, echo)
	c := dial(t, ts.addr())
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	roundTrip(t, c, []byte("still here"))
	if _, err := dialErr(ts.addr(), nil); err == nil {
		t.Fatal("handshake after Server.Close succeeded")
	}
	select {
	case err := <-ts.errs:
		if !errors.Is(err, errServerClosed) {
			t.Fatalf("server error = %v, want errServerClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no server error")
	}
}

// TestConcurrentConns runs 8 goroutines with 10 concurrent DHE connections
// each, echoing records in both directions; run it under -race.
func TestConcurrentConns(t *testing.T) {
	srv, _ := newServer(t, Config{})
	ts := startServer(t, srv, echo)
	var g errgroup.Group
	for w := range 8 {
		g.Go(func() error {
			var conns errgroup.Group
			for i := range 10 {
				conns.Go(func() error { return echoSession(ts.addr(), w*10+i) })
			}
			return conns.Wait()
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// echoSession dials, sends records of several sizes and checks each echo.
func echoSession(addr string, id int) error {
	c, err := dialErr(addr, nil)
	if err != nil {
		return fmt.Errorf("conn %d: %w", id, err)
	}
	defer c.Close()
	buf := make([]byte, 4096)
	for i, size := range []int{1, 32, 100, 1024, 3000} {
		msg := bytes.Repeat([]byte{byte('a' + (id+i)%26)}, size)
		if _, err := c.Write(msg); err != nil {
			return fmt.Errorf("conn %d write: %w", id, err)
		}
		n, err := c.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			return fmt.Errorf("conn %d: echo of %d bytes came back as %d, %v", id, size, n, err)
		}
	}
	return nil
}
