package tcp

import (
	"crypto/tls"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/transport"
)

// slowWriter splits the next write in two with a pause between the halves:
// one TLS record that arrives in pieces, across the reader's idle time.
type slowWriter struct {
	net.Conn
	split atomic.Bool
	pause time.Duration
}

func (w *slowWriter) Write(p []byte) (int, error) {
	if !w.split.CompareAndSwap(true, false) || len(p) < 2 {
		return w.Conn.Write(p)
	}
	n, err := w.Conn.Write(p[:len(p)/2])
	if err != nil {
		return n, err
	}
	time.Sleep(w.pause)
	m, err := w.Conn.Write(p[len(p)/2:])
	return n + m, err
}

// tlsTestListener returns a test certificate and a loopback listener,
// closed when the test ends.
func tlsTestListener(t *testing.T) (tls.Certificate, net.Listener) {
	t.Helper()
	cert := testcert.Write(t)
	pair, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return pair, ln
}

// A crypto/tls connection reads whole records across its idle times: after
// more than idleRead without data (its buffer given back), and with one
// record that arrives in two halves with an idle time between them.
func TestLazyReadAcrossIdleTimes(t *testing.T) {
	pair, ln := tlsTestListener(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	var client *slowWriter
	wg.Go(func() {
		tc := dialTestClient(t, ln, func(raw net.Conn) net.Conn {
			client = &slowWriter{Conn: raw, pause: idleRead + 300*time.Millisecond}
			return client
		})
		if tc == nil {
			return
		}
		defer tc.Close()
		for i, msg := range []string{"first", "after an idle time", "in two halves"} {
			switch i {
			case 1:
				time.Sleep(idleRead + 300*time.Millisecond)
			case 2:
				client.split.Store(true)
			}
			if _, err := tc.Write([]byte(msg)); err != nil {
				t.Error(err)
				return
			}
		}
		tc.Read(make([]byte, 1)) // until the server closes
	})
	c := acceptRecordConn(t, ln, pair)
	defer c.Close() // before wg.Wait: the client reads until the server closes
	if c.lazy == nil {
		t.Fatal("a crypto/tls connection on a TCP socket should borrow its buffer")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, want := range []string{"first", "after an idle time", "in two halves"} {
		got, err := c.ReadMessage()
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	// The core's deadline still holds while no buffer is held.
	c.SetReadDeadline(time.Now().Add(idleRead + 500*time.Millisecond))
	start := time.Now()
	if _, err := c.ReadMessage(); !isTimeout(err) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	if took := time.Since(start); took < idleRead {
		t.Fatalf("the deadline fired after %v, before it was due", took)
	}
}

// TestSpareRecordsAreBounded: of 200 record buffers given back at once (a
// burst of connections going idle), at most cap(spareRecords) outlive
// the next collection. A sync.Pool would keep all 200 until the one after
// it, and an idle server runs none.
func TestSpareRecordsAreBounded(t *testing.T) {
	const n = 200
	alive := make([]weak.Pointer[[]byte], n)
	for i := range alive {
		b := make([]byte, transport.MaxMessage)
		alive[i] = weak.Make(&b)
		putRecord(&b)
	}
	runtime.GC()
	kept := 0
	for _, p := range alive {
		if p.Value() != nil {
			kept++
		}
	}
	if kept > cap(spareRecords) {
		t.Fatalf("%d of %d buffers given back outlived a collection, want at most %d", kept, n, cap(spareRecords))
	}
	if b := getRecord(); len(*b) != transport.MaxMessage {
		t.Fatalf("a spare buffer of %d bytes, want %d", len(*b), transport.MaxMessage)
	}
}

// TestLazyReadKeepsBufferWhileBusy: records every 20 ms (a call's frames)
// for three times idleRead never let the short deadline pass, although
// armShort looks at the clock only every armEvery reads: the buffer is
// never given back. Then records every 700 ms (more than idleRead/2 apart)
// all arrive whole, the buffer going back between some of them.
func TestLazyReadKeepsBufferWhileBusy(t *testing.T) {
	pair, ln := tlsTestListener(t)
	busy := int(3 * idleRead / (20 * time.Millisecond))
	const slow = 4
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		tc := dialTestClient(t, ln, nil)
		if tc == nil {
			return
		}
		defer tc.Close()
		for i := range busy + slow {
			pause := 20 * time.Millisecond
			if i >= busy {
				pause = 700 * time.Millisecond
			}
			time.Sleep(pause)
			if _, err := fmt.Fprintf(tc, "record %d", i); err != nil {
				t.Error(err)
				return
			}
		}
		tc.Read(make([]byte, 1)) // until the server closes
	})
	c := acceptRecordConn(t, ln, pair)
	defer c.Close() // before wg.Wait: the client reads until the server closes
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := range busy + slow {
		got, err := c.ReadMessage()
		if want := fmt.Sprintf("record %d", i); err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
		if i == busy-1 && c.lazy.idles != 0 {
			t.Fatalf("the buffer went back %d times while records came every 20 ms", c.lazy.idles)
		}
	}
	t.Logf("the buffer went back %d times during the %d slow records", c.lazy.idles, slow)
}

// acceptRecordConn accepts one connection on ln and shakes hands as a
// crypto/tls server with pair.
func acceptRecordConn(t *testing.T, ln net.Listener, pair tls.Certificate) *recordConn {
	t.Helper()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sc := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{pair}})
	if err := sc.Handshake(); err != nil {
		raw.Close()
		t.Fatal(err)
	}
	return newRecordConn(sc, raw)
}

// TestLazyReadIdlesAfterTheCoreMovesItsDeadline: after a record, the core
// puts its own (long) read deadline on, as it does after a login or a
// media registration; the connection then idles past idleRead, and the
// buffer must still go back, not wait with the connection for its idle
// timeout (2,000 idle users held 12 KiB each more when it did not).
func TestLazyReadIdlesAfterTheCoreMovesItsDeadline(t *testing.T) {
	pair, ln := tlsTestListener(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		tc := dialTestClient(t, ln, nil)
		if tc == nil {
			return
		}
		defer tc.Close()
		for _, msg := range []string{"login", "after the idle time"} {
			if _, err := tc.Write([]byte(msg)); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(idleRead + 500*time.Millisecond)
		}
		tc.Read(make([]byte, 1)) // until the server closes
	})
	c := acceptRecordConn(t, ln, pair)
	defer c.Close() // before wg.Wait: the client reads until the server closes
	for i, want := range []string{"login", "after the idle time"} {
		got, err := c.ReadMessage()
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
		if i == 0 {
			c.SetReadDeadline(time.Now().Add(time.Minute)) // the core's idle deadline
		}
	}
	if c.lazy.idles == 0 {
		t.Fatalf("the buffer was held through %v without data", idleRead+500*time.Millisecond)
	}
}

// dialTestClient dials ln as a crypto/tls client that checks nothing,
// over wrap(the TCP connection) when wrap is not nil; nil after reporting
// a failed dial.
func dialTestClient(t *testing.T, ln net.Listener, wrap func(net.Conn) net.Conn) *tls.Conn {
	t.Helper()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Error(err)
		return nil
	}
	if wrap != nil {
		raw = wrap(raw)
	}
	return tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
}
