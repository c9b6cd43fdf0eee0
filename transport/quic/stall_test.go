package quic_test

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/transport/quic"
)

// deafConn is a client socket that, once deaf, throws away every packet it
// receives: the client hears nothing and so acknowledges nothing, like a
// phone whose downlink vanished. It still sends (keep-alives, probes), so
// the server's idle timeout never fires.
type deafConn struct {
	pc   *net.UDPConn // not embedded: quic-go must not bypass ReadFrom
	deaf atomic.Bool
}

func (d *deafConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := d.pc.ReadFrom(b)
		if err != nil || !d.deaf.Load() {
			return n, addr, err
		}
	}
}

func (d *deafConn) WriteTo(b []byte, addr net.Addr) (int, error) { return d.pc.WriteTo(b, addr) }
func (d *deafConn) Close() error                                 { return d.pc.Close() }
func (d *deafConn) LocalAddr() net.Addr                          { return d.pc.LocalAddr() }
func (d *deafConn) SetDeadline(t time.Time) error                { return d.pc.SetDeadline(t) }
func (d *deafConn) SetReadDeadline(t time.Time) error            { return d.pc.SetReadDeadline(t) }
func (d *deafConn) SetWriteDeadline(t time.Time) error           { return d.pc.SetWriteDeadline(t) }

// TestStalledReceiverCannotStallCore: bob stops taking media in a call
// that alice floods: in stream mode he stops reading his media stream
// (flow control then blocks the server's writes to it), in datagram mode
// his socket stops hearing anything (quic-go's datagram queue toward him
// then fills and SendDatagram blocks, deadline or not). Meanwhile carol
// and dave's call keeps its frame round trips short, and bob loses his
// media channel (not his connection) once a write has waited
// MediaWriteTimeout; alice is told call|drop. Call liveness is off here, so that only the write
// deadline can end bob's media.
func TestStalledReceiverCannotStallCore(t *testing.T) {
	for _, dgram := range []bool{false, true} {
		t.Run(map[bool]string{false: "stream", true: "datagram"}[dgram], func(t *testing.T) {
			const timeout = time.Second
			e := startQUIC(t, core.Config{MediaWriteTimeout: timeout, MediaQueue: 4},
				quic.Config{CallLiveness: time.Hour})
			e.client = &quicgo.Config{EnableDatagrams: true, KeepAlivePeriod: time.Second,
				InitialStreamReceiveWindow: 4 << 10, MaxStreamReceiveWindow: 4 << 10,
				InitialConnectionReceiveWindow: 8 << 10, MaxConnectionReceiveWindow: 8 << 10}
			ear := &deafConn{}
			bob := e.login(e.connectVia("bob", func(pc *net.UDPConn) net.PacketConn { ear.pc = pc; return ear }), dgram)
			e.client = nil
			alice := e.online("alice", false)
			carol, dave := e.online("carol", false), e.online("dave", true)
			call(t, alice, bob)
			call(t, carol, dave)
			exchange := func(i int) time.Duration {
				t0 := time.Now()
				carol.sendMedia(frame(i))
				if got := dave.readDatagram(); !bytes.Equal(got, frame(i)) {
					t.Fatalf("frame %d carol→dave: %q", i, got)
				}
				dave.sendMedia(frame(i))
				if got := carol.readStream(32); !bytes.Equal(got, frame(i)) {
					t.Fatalf("frame %d dave→carol: %q", i, got)
				}
				return time.Since(t0)
			}
			var calm time.Duration
			for i := range 10 {
				calm = max(calm, exchange(i))
			}

			before := e.core.Stats().WriteFailures
			ear.deaf.Store(dgram) // stream mode: bob just never reads his media stream
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() { flood(alice.media, stop) })
			defer wg.Wait()
			defer close(stop)
			t0 := time.Now()
			var worst time.Duration
			for i := 10; e.core.Stats().WriteFailures == before; i++ {
				if time.Since(t0) > 10*timeout {
					t.Fatalf("bob's media still open %v after the flood began", time.Since(t0))
				}
				worst = max(worst, exchange(i))
				time.Sleep(20 * time.Millisecond)
			}
			ended := time.Since(t0)
			t.Logf("bob's media ended %v after the flood began (MediaWriteTimeout %v); carol↔dave round trips: %v at most before, %v during",
				ended.Round(time.Millisecond), timeout, calm.Round(time.Microsecond), worst.Round(time.Microsecond))
			// Stream mode stalls at once (flow control). In datagram mode
			// quic-go's loss probes still let a datagram or two out after
			// each probe timeout, which doubles from a few milliseconds on
			// loopback: writes go on succeeding until a probe gap outlasts
			// the write deadline, one to three seconds in.
			if limit := map[bool]time.Duration{false: timeout + time.Second, true: 6 * timeout}[dgram]; ended > limit {
				t.Errorf("bob's media ended %v after the flood began, want at most %v", ended, limit)
			}
			if worst > ended/2 && worst > 500*time.Millisecond { // a stalled relay would hold them the whole time
				t.Errorf("carol↔dave round trip took %v during the %v stall", worst, ended)
			}
			alice.expect("call|drop|" + alice.sid)
			if err := bob.qc.Context().Err(); err != nil {
				t.Errorf("bob's connection closed (%v): only his media should end", err)
			}
			for i := range 5 {
				exchange(1000 + i)
			}
			carol.quiet()
			dave.quiet()
		})
	}
}

// flood writes to st until stop is closed (at most 30 s), ignoring errors
// (the server may close the stream when the call ends).
func flood(st *quicgo.Stream, stop <-chan struct{}) {
	chunk := bytes.Repeat([]byte("m"), 1000)
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
		select {
		case <-stop:
			return
		default:
		}
		st.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := st.Write(chunk); err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		time.Sleep(time.Millisecond)
	}
}
