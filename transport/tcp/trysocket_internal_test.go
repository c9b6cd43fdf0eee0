//go:build unix

package tcp

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/transport/tcp/clienthello"
)

// Direct writes to a client that stops reading fill the socket without
// ever waiting; the record that does not fit is held, not lost or cut, and
// goes out before anything written after it. The client reads every frame,
// whole and in order.
func TestTriedWritesHoldWhatDoesNotFit(t *testing.T) {
	pair, ln := tlsTestListener(t)
	startReading := make(chan struct{})
	var got []uint64
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		tc := dialTestClient(t, ln, func(raw net.Conn) net.Conn {
			raw.(*net.TCPConn).SetReadBuffer(4096)
			return raw
		})
		if tc == nil {
			return
		}
		defer tc.Close()
		tc.SetDeadline(time.Now().Add(20 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Error(err)
			return
		}
		<-startReading
		buf := make([]byte, 1<<16)
		for {
			n, err := tc.Read(buf)
			if err != nil {
				return // the server closes when it has written everything
			}
			if n != 32 {
				t.Errorf("read a %d-byte record, want one 32-byte frame per record", n)
				return
			}
			got = append(got, binary.BigEndian.Uint64(buf))
		}
	})
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	raw.(*net.TCPConn).SetWriteBuffer(4096)
	ts := newTrySocket(raw, raw)
	sc := tls.Server(ts, &tls.Config{Certificates: []tls.Certificate{pair}})
	sc.SetDeadline(time.Now().Add(20 * time.Second))
	if err := sc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c := newRecordConn(sc, raw)
	if c.try == nil {
		t.Fatal("a crypto/tls connection on a TCP socket should try its writes")
	}
	frame := make([]byte, 32)
	var sent uint64
	write := func(try bool) transport.TryResult {
		t.Helper()
		binary.BigEndian.PutUint64(frame, sent)
		sent++
		if !try {
			if err := c.WriteMedia(frame); err != nil {
				t.Fatal(err)
			}
			return transport.Written
		}
		start := time.Now()
		res, err := c.TryWriteMedia(frame)
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("a tried write took %v", took)
		}
		return res
	}
	// The client reads nothing yet: the socket fills up.
	const most = 1 << 20
	for write(true) != transport.Held {
		if sent == most {
			t.Fatalf("%d frames went out to a client that reads nothing", sent)
		}
	}
	held := sent
	close(startReading)
	if err := c.WriteMedia(nil); err != nil { // what was held, waiting for room
		t.Fatal(err)
	}
	if c.try.holding.Load() {
		t.Fatal("still holding after WriteMedia")
	}
	for range 10 {
		write(true)
	}
	write(false)
	if err := c.WriteMedia(nil); err != nil {
		t.Fatal(err)
	}
	sc.Close()
	wg.Wait()
	if uint64(len(got)) != sent {
		t.Fatalf("the client read %d frames of %d (the %dth was held)", len(got), sent, held)
	}
	for i, n := range got {
		if n != uint64(i) {
			t.Fatalf("frame %d arrived as the %dth", n, i)
		}
	}
	t.Logf("%d frames went out before one was held", held-1)
}

// What a tried write held waits for room only within the write deadline:
// toward a client that never reads, the flush fails with a timeout once
// the deadline passes, instead of blocking the relay's writer for good.
func TestHeldBytesMeetTheWriteDeadline(t *testing.T) {
	pair, ln := tlsTestListener(t)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer raw.Close()
		raw.(*net.TCPConn).SetReadBuffer(4096)
		tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
		tc.SetDeadline(time.Now().Add(20 * time.Second))
		if tc.Handshake() == nil {
			<-stop // reads nothing more
		}
	}()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.(*net.TCPConn).SetWriteBuffer(4096)
	sc := tls.Server(newTrySocket(raw, raw), &tls.Config{Certificates: []tls.Certificate{pair}})
	sc.SetDeadline(time.Now().Add(20 * time.Second))
	if err := sc.Handshake(); err != nil {
		t.Fatal(err)
	}
	sc.SetDeadline(time.Time{})
	c := newRecordConn(sc, raw)
	frame := make([]byte, 32)
	// Fill the socket until a flush of what was held has to wait: a held
	// tail may still find room at once while the client's window is open.
	const deadline = 300 * time.Millisecond
	for round := 0; ; round++ {
		if round == 10000 {
			t.Fatal("every flush found room toward a client that reads nothing")
		}
		held := false
		for range 1 << 20 {
			res, err := c.TryWriteMedia(frame)
			if err != nil {
				t.Fatal(err)
			}
			if held = res == transport.Held; held {
				break
			}
		}
		if !held {
			t.Fatal("no tried write was held toward a client that reads nothing")
		}
		c.SetWriteDeadline(time.Now().Add(deadline))
		start := time.Now()
		err := c.WriteMedia(nil)
		took := time.Since(start)
		if err == nil {
			continue
		}
		if !isTimeout(err) {
			t.Fatalf("flushing toward a client that reads nothing: %v, want a timeout", err)
		}
		if took < deadline/2 || took > 10*time.Second {
			t.Fatalf("the flush ended after %v; the deadline was %v", took, deadline)
		}
		return
	}
}

// TestTrySocketReadsReplayThenSocket: what the ClientHello reader took is
// read first, through the ReplayConn; once that is drained, the socket is
// read directly, and nothing is lost or read twice on the way.
func TestTrySocketReadsReplayThenSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		c.Write([]byte("world"))
	})
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	ts := newTrySocket(clienthello.NewReplayConn(raw, []byte("hello ")), raw)
	if ts == nil || ts.replay == nil {
		t.Fatal("a trySocket over a ReplayConn should read through it first")
	}
	var got []byte
	buf := make([]byte, 4)
	for len(got) < len("hello world") {
		n, err := ts.Read(buf)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
		if len(got) >= len("hello ") && ts.replay != nil {
			t.Fatalf("after %q: still reading through the drained ReplayConn", got)
		}
	}
	if string(got) != "hello world" {
		t.Fatalf("read %q, want %q", got, "hello world")
	}
}
