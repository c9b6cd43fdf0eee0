package client_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/core"
)

// Calls that last, and a QUIC path that vanishes mid-call (PROTOCOL.md,
// "Liveness during a call").

// longCall is how long the long calls run, in real time: well past every
// deadline of 30 s that once ended datagram calls.
const longCall = 2*time.Minute + 5*time.Second

// TestLongCalls holds a QUIC stream-mode call and a datagram-mode call for
// longCall at 50 frames/s each way and counts every frame: all arrive, in
// order, and neither party hears a notice.
func TestLongCalls(t *testing.T) {
	for _, tr := range []client.Transport{client.QUIC, client.QUICDatagram} {
		t.Run(tr.String(), func(t *testing.T) {
			t.Parallel()
			s := startServer(t, core.Config{})
			a, b := s.online(t, "alice", tr), s.online(t, "bob", tr)
			call(t, a, b)
			var wg sync.WaitGroup
			var ab, ba talkResult
			wg.Go(func() { ab = talk(a, b, longCall) })
			wg.Go(func() { ba = talk(b, a, longCall) })
			wg.Wait()
			for _, r := range []talkResult{ab, ba} {
				t.Logf("%s: sent %d frames, received %d in order, longest gap %v", r.dir, r.sent, r.got, r.maxGap)
				if r.err != nil {
					t.Errorf("%s: %v", r.dir, r.err)
				} else if r.got != r.sent {
					t.Errorf("%s: %d of %d frames arrived", r.dir, r.got, r.sent)
				}
			}
			noEvent(t, a)
			noEvent(t, b)
			if err := a.End(context.Background(), "bob"); err != nil {
				t.Fatalf("hang up after %v: %v", longCall, err)
			}
			expectEvent(t, b, client.Ended, "alice")
		})
	}
}

// talkResult is one direction of a talk.
type talkResult struct {
	dir       string
	sent, got int
	maxGap    time.Duration
	err       error
}

// talk sends 32-byte numbered frames from a to b every 20 ms for d and
// reads them at b, checking their order; it returns when all arrived or 5 s
// after the last was sent.
func talk(a, b *client.Client, d time.Duration) talkResult {
	r := talkResult{dir: a.User() + "→" + b.User()}
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		frame := make([]byte, 32)
		copy(frame[8:], "voice frame from "+a.User())
		for end := time.Now().Add(d); time.Now().Before(end); <-tick.C {
			binary.BigEndian.PutUint64(frame, uint64(sent.Load()))
			if err := a.Media().WriteMedia(frame); err != nil {
				return
			}
			sent.Add(1)
		}
	}()
	var buf []byte
	last := time.Now()
	var sentAll time.Time
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		p, err := b.Media().ReadMedia(ctx)
		cancel()
		now := time.Now()
		select {
		case <-done:
			if sentAll.IsZero() {
				sentAll = now
			}
		default:
		}
		if err == nil {
			r.maxGap = max(r.maxGap, now.Sub(last))
			last = now
			buf = append(buf, p...)
			for ; len(buf) >= 32; buf = buf[32:] {
				if n := binary.BigEndian.Uint64(buf); n != uint64(r.got) {
					r.err = fmt.Errorf("frame %d arrived where frame %d was due", n, r.got)
					return r
				}
				r.got++
			}
		} else if !errors.Is(err, context.DeadlineExceeded) {
			r.err = fmt.Errorf("media ended after %d frames: %v", r.got, err)
			<-done
			r.sent = int(sent.Load())
			return r
		}
		if !sentAll.IsZero() && (int64(r.got) == sent.Load() || now.Sub(sentAll) > 5*time.Second) {
			r.sent = int(sent.Load())
			return r
		}
	}
}

// pathCut wraps the UDP sockets a client opens; cutting it drops every
// packet both ways, as when the network vanishes under a phone.
type pathCut struct {
	mu    sync.Mutex
	conns []*cuttableConn
}

type cuttableConn struct {
	net.PacketConn
	cut atomic.Bool
}

func (c *cuttableConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.cut.Load() {
		return len(p), nil // lost on the way
	}
	return c.PacketConn.WriteTo(p, addr)
}

func (c *cuttableConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || !c.cut.Load() {
			return n, addr, err
		}
	}
}

// wrap is the hook for client.WrapUDPForTest.
func (pc *pathCut) wrap(c net.PacketConn) net.PacketConn {
	cc := &cuttableConn{PacketConn: c}
	pc.mu.Lock()
	pc.conns = append(pc.conns, cc)
	pc.mu.Unlock()
	return cc
}

// cut drops everything on every socket wrapped so far.
func (pc *pathCut) cut() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, c := range pc.conns {
		c.cut.Store(true)
	}
}

// TestVanishedQUICPathDropsTheCall cuts a QUIC client's network mid-call
// (no close frame, nothing more from it): its peer, legacy or QUIC, gets
// call|drop within 3 s, and the client itself reports the lost server
// within 3 s.
func TestVanishedQUICPathDropsTheCall(t *testing.T) {
	for _, tc := range []struct{ vanishing, peer client.Transport }{
		{client.QUIC, client.TCP},
		{client.QUICDatagram, client.TCP},
		{client.QUIC, client.QUIC},
		{client.QUICDatagram, client.QUICDatagram},
	} {
		t.Run(tc.vanishing.String()+"-with-"+tc.peer.String(), func(t *testing.T) {
			s := startServer(t, core.Config{})
			peer := s.online(t, "bob", tc.peer)
			var pc pathCut
			restore := client.WrapUDPForTest(pc.wrap)
			a := s.online(t, "alice", tc.vanishing)
			restore()
			call(t, peer, a)
			exchange(t, a, peer, 2)

			pc.cut()
			cutAt := time.Now()
			var wg sync.WaitGroup
			var lostAfter time.Duration
			var lostErr error
			wg.Go(func() { // alice: her events end with the lost server
				for range a.Events() {
				}
				lostAfter, lostErr = time.Since(cutAt), a.Err()
			})
			expectEvent(t, peer, client.Dropped, "alice")
			dropAfter := time.Since(cutAt)
			wg.Wait()
			t.Logf("path cut: peer's call|drop after %v; alice saw %q after %v", dropAfter.Round(time.Millisecond), lostErr, lostAfter.Round(time.Millisecond))
			if dropAfter > 3*time.Second {
				t.Errorf("the peer's drop notice came %v after the path vanished, want at most 3 s", dropAfter)
			}
			if !errors.Is(lostErr, client.ErrLostServer) || lostAfter > 3*time.Second {
				t.Errorf("alice: Err %v after %v, want ErrLostServer within 3 s", lostErr, lostAfter)
			}
			quiet(t, peer)
		})
	}
}

// TestDialServerThatIsDown: a QUIC dial to a port where nothing answers
// fails in about 3 s and says what to check; a TCP dial fails at once.
// (One attempt each: DialRetries -1. With retries, Dial tries until
// Options.Timeout: TestDialRetriesWithinTimeout.)
func TestDialServerThatIsDown(t *testing.T) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close() // nothing listens there now
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	for _, tc := range []struct {
		tr       client.Transport
		want     string
		atLeast  time.Duration
		atMost   time.Duration
		quicPort int
	}{
		{client.QUIC, fmt.Sprintf("no answer from UDP port %d on 127.0.0.1: is dtoperator running, is UDP open?", port), 2 * time.Second, 5 * time.Second, port},
		{client.TCP, fmt.Sprintf("nothing listens on TCP port %d on 127.0.0.1: is dtoperator running?", tcpPort), 0, time.Second, 0},
	} {
		start := time.Now()
		c, err := client.Dial(context.Background(), client.Options{
			Server: "127.0.0.1", Transport: tc.tr, QUICPort: tc.quicPort, CommandPort: tcpPort,
			PinSHA256: "sha256:" + strings.Repeat("00", 32), DialRetries: -1,
		})
		took := time.Since(start)
		if err == nil {
			c.Close()
			t.Fatalf("%v: dial of a server that is down succeeded", tc.tr)
		}
		t.Logf("%v: %v after %v", tc.tr, err, took.Round(time.Millisecond))
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %q, want it to say %q", tc.tr, err, tc.want)
		}
		if took < tc.atLeast || took > tc.atMost {
			t.Errorf("%v: failed after %v, want %v to %v", tc.tr, took, tc.atLeast, tc.atMost)
		}
	}
}
