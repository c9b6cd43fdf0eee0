package client_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/internal/testserver"
	"github.com/dtcall/dtcall/transport/quic"
	"github.com/dtcall/dtcall/transport/tcp"
)

// TestDialRetriesQUICRefusal: the QUIC front refuses a second connection
// from 127.0.0.1 (per-source cap 1) with CONNECTION_REFUSED; Dial tries
// again with backoff and gets through once the first client leaves.
// Without retries the refusal is Dial's error.
func TestDialRetriesQUICRefusal(t *testing.T) {
	s := startServerWith(t, testserver.Config{QUIC: quic.Config{MaxConnsPerSource: 1}})
	o := s.options(client.QUIC)
	o.LocalAddr = "127.0.0.1"
	first := s.dial(t, o)

	none := o
	none.DialRetries = -1
	var te *quicgo.TransportError
	if _, err := client.Dial(context.Background(), none); !errors.As(err, &te) || te.ErrorCode != quicgo.ConnectionRefused {
		t.Fatalf("dial without retries: %v, want CONNECTION_REFUSED", err)
	}

	time.AfterFunc(400*time.Millisecond, func() { first.Close() })
	start := time.Now()
	c := s.dial(t, o)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("dial took %v: it was never refused", d)
	}
	if n := s.QUIC.Stats().Refused["per_source"]; n < 2 {
		t.Errorf("refused per source: %d, want the first attempts refused", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Login(ctx, "alice", "pw-alice"); err != nil {
		t.Fatalf("login after the retries: %v", err)
	}
}

// TestDialRetriesTCPHandshakeCap: the legacy front closes a connection
// from a source that already has MaxHandshakesPerSource (1) shaking hands;
// Dial's TLS handshake fails on that, and its retries get through once the
// silent connection holding the slot is gone. The media connection is
// dialed the same way.
func TestDialRetriesTCPHandshakeCap(t *testing.T) {
	s := startServerWith(t, testserver.Config{Legacy: tcp.Config{MaxHandshakesPerSource: 1}})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.commandPort))
	silent, err := net.Dial("tcp", addr) // never sends a ClientHello
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	waitFor(t, func() bool { return s.Legacy.Stats().Handshaking == 1 })

	o := s.options(client.TCP)
	none := o
	none.DialRetries = -1
	if _, err := client.Dial(context.Background(), none); err == nil {
		t.Fatal("dial without retries got through the per-source cap")
	}

	time.AfterFunc(400*time.Millisecond, func() { silent.Close() })
	c := s.dial(t, o)
	if n := s.Legacy.Stats().Refused[tcp.RefusedPerSource]; n < 2 {
		t.Errorf("refused per source: %d, want the first attempts refused", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Login(ctx, "alice", "pw-alice"); err != nil {
		t.Fatalf("login after the retries: %v", err)
	}
	if err := c.RegisterMedia(ctx); err != nil {
		t.Fatalf("media: %v", err)
	}
}

// TestDialRetriesWithinTimeout: against a port where nothing listens,
// Dial retries until Options.Timeout and no longer.
func TestDialRetriesWithinTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	o := client.Options{Server: "127.0.0.1", CommandPort: port, PinSHA256: "sha256:" + zeros64,
		Timeout: 700 * time.Millisecond, RetryBackoff: 50 * time.Millisecond}
	start := time.Now()
	_, err = client.Dial(context.Background(), o)
	d := time.Since(start)
	if err == nil {
		t.Fatal("dialed a closed port")
	}
	if d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("Dial gave up after %v, want about the 700 ms timeout", d)
	}
}

const zeros64 = "0000000000000000000000000000000000000000000000000000000000000000"

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
	}
}
