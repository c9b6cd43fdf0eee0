package quic_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/transport/transporttest"
)

// pushInBackground runs PushMedia on m and hands on what it delivers and
// what it returns.
func pushInBackground(t *testing.T, m transport.MediaConn, idle time.Duration) (<-chan string, <-chan error) {
	t.Helper()
	p, ok := m.(transport.Pusher)
	if !ok {
		t.Fatal("a QUIC media stream is no transport.Pusher")
	}
	got := make(chan string, 100)
	ended := make(chan error, 1)
	go func() { ended <- p.PushMedia(idle, func(b []byte) { got <- string(b) }) }()
	return got, ended
}

func expectEnd(t *testing.T, ended <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ended:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("PushMedia did not end after %s", what)
		return nil
	}
}

// TestDatagramPush: a datagram-mode media stream is pushed (the core then
// gets each datagram from the connection's datagram reader, not from a
// ReadMedia of its own): datagrams queued before the push come first,
// then each one as it arrives; a read deadline in the past ends the push
// with a timeout, as it fails a read. TryWriteMedia sends a datagram
// without waiting.
func TestDatagramPush(t *testing.T) {
	f := startConformance(t)
	pipe := f.mediaPipe(true)(t, nil)
	defer pipe.Conn.Close()
	if err := pipe.Peer.WriteMedia([]byte("queued")); err != nil {
		t.Fatal(err)
	}
	// Read nothing until "queued" is in the stream's queue: the push
	// starts with it.
	time.Sleep(100 * time.Millisecond)
	got, ended := pushInBackground(t, pipe.Conn, 0)
	transporttest.ExpectDelivered(t, got, "queued")
	for _, d := range []string{"one", "two", "three"} {
		if err := pipe.Peer.WriteMedia([]byte(d)); err != nil {
			t.Fatal(err)
		}
		transporttest.ExpectDelivered(t, got, d)
	}

	tw, ok := pipe.Conn.(transport.TryWriter)
	if !ok {
		t.Fatal("a QUIC media stream is no transport.TryWriter")
	}
	if res, err := tw.TryWriteMedia([]byte("to the client")); err != nil || res != transport.Written {
		t.Fatalf("TryWriteMedia: %v, %v; want written", res, err)
	}
	if b, err := pipe.Peer.ReadMedia(time.Now().Add(5 * time.Second)); err != nil || string(b) != "to the client" {
		t.Fatalf("the client got %q, %v", b, err)
	}

	// A write deadline that has passed fails the direct write at once.
	pipe.Conn.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	time.Sleep(100 * time.Millisecond)
	if _, err := tw.TryWriteMedia([]byte("late")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("TryWriteMedia past its write deadline: %v, want a timeout", err)
	}
	pipe.Conn.SetWriteDeadline(time.Time{})

	pipe.Conn.SetReadDeadline(time.Unix(1, 0)) // the core's closed mark
	if err := expectEnd(t, ended, "a read deadline in the past"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the push ended with %v, want a timeout", err)
	}
	if err := pipe.Peer.WriteMedia([]byte("after")); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-got:
		t.Fatalf("delivered %q after the push ended", g)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestDatagramPushEnds: a push ends when the client closes the anchor
// stream (the registration is gone), when nothing arrives for its idle
// time, and when the stream is closed; a stream-mode media stream is not
// pushed and takes no direct writes.
func TestDatagramPushEnds(t *testing.T) {
	f := startConformance(t)

	t.Run("anchor", func(t *testing.T) {
		pipe := f.mediaPipe(true)(t, nil)
		defer pipe.Conn.Close()
		_, ended := pushInBackground(t, pipe.Conn, 0)
		pipe.Peer.Close()
		if err := expectEnd(t, ended, "the anchor stream closed"); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the push ended with %v, want the anchor's end", err)
		}
	})

	t.Run("idle", func(t *testing.T) {
		const idle = 300 * time.Millisecond
		pipe := f.mediaPipe(true)(t, nil)
		defer pipe.Conn.Close()
		got, ended := pushInBackground(t, pipe.Conn, idle)
		start := time.Now()
		for range 4 { // media keeps it going past its idle time
			time.Sleep(idle / 2)
			if err := pipe.Peer.WriteMedia([]byte("m")); err != nil {
				t.Fatal(err)
			}
			transporttest.ExpectDelivered(t, got, "m")
		}
		err := expectEnd(t, ended, "its idle time")
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the push ended with %v, want a timeout", err)
		}
		if took := time.Since(start); took < 2*idle {
			t.Fatalf("the push ended after %v although media came every %v", took, idle/2)
		}
	})

	t.Run("close", func(t *testing.T) {
		pipe := f.mediaPipe(true)(t, nil)
		_, ended := pushInBackground(t, pipe.Conn, 0)
		pipe.Conn.Close()
		if err := expectEnd(t, ended, "Close"); err == nil {
			t.Fatal("the push ended without an error")
		}
	})

	t.Run("stream mode", func(t *testing.T) {
		pipe := f.mediaPipe(false)(t, nil)
		defer pipe.Conn.Close()
		if err := pipe.Conn.(transport.Pusher).PushMedia(0, func([]byte) {}); !errors.Is(err, transport.ErrNoPush) {
			t.Fatalf("PushMedia in stream mode: %v, want ErrNoPush", err)
		}
		if res, err := pipe.Conn.(transport.TryWriter).TryWriteMedia([]byte("x")); res != transport.NotTaken || err != nil {
			t.Fatalf("TryWriteMedia in stream mode: %v, %v; want not taken", res, err)
		}
	})
}

// TestDatagramTryWriteNeverWaits attacks the direct datagram write: toward
// a client that acknowledges nothing, TryWriteMedia keeps returning at
// once, and stops taking datagrams once the send queues are full instead
// of blocking its caller (the sender's relay).
func TestDatagramTryWriteNeverWaits(t *testing.T) {
	f := startConformance(t)
	pipe := f.mediaPipe(true)(t, nil)
	defer pipe.Conn.Close()
	pipe.Peer.Stall()
	tw := pipe.Conn.(transport.TryWriter)
	frame := make([]byte, 160)
	written, slowest := 0, time.Duration(0)
	deadline := time.Now().Add(10 * time.Second)
	for tries := 0; tries < 100000 && time.Now().Before(deadline); tries++ {
		start := time.Now()
		res, err := tw.TryWriteMedia(frame)
		slowest = max(slowest, time.Since(start))
		if err != nil {
			t.Fatalf("after %d datagrams: %v", written, err)
		}
		if res == transport.NotTaken {
			t.Logf("not taken after %d datagrams toward a stalled client; slowest try %v", written, slowest)
			if slowest > 100*time.Millisecond {
				t.Errorf("a TryWriteMedia took %v", slowest)
			}
			return
		}
		written++
		if written%8 == 0 {
			time.Sleep(time.Millisecond) // let quic-go send, as 20 ms voice frames would
		}
	}
	t.Fatalf("TryWriteMedia took all %d datagrams toward a stalled client", written)
}
