package client_test

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/core"
)

// countingConn counts the packets through a UDP socket.
type countingConn struct {
	net.PacketConn
	in, out atomic.Int64
}

func (c *countingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	if err == nil {
		c.in.Add(1)
	}
	return n, addr, err
}

func (c *countingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(p, addr)
	if err == nil {
		c.out.Add(1)
	}
	return n, err
}

// received is what one party's media reader saw.
type received struct {
	data   []byte
	maxGap time.Duration // longest time between two arrivals
	err    error
}

// receive reads media until n bytes arrived or ctx ends.
func receive(ctx context.Context, c *client.Client, n int) received {
	var r received
	last := time.Now()
	for len(r.data) < n {
		b, err := c.Media().ReadMedia(ctx)
		if err != nil {
			r.err = err
			return r
		}
		if now := time.Now(); len(r.data) > 0 {
			r.maxGap = max(r.maxGap, now.Sub(last))
			last = now
		} else {
			last = now
		}
		r.data = append(r.data, b...)
	}
	return r
}

// play sends frames first.. at 50 frames/s, as a phone does.
func play(c *client.Client, first, n int) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := range n {
		if err := c.Media().WriteMedia(frames(first+i, 1)); err != nil {
			return err
		}
		<-tick.C
	}
	return nil
}

// A QUIC client that moves to a new socket while voice flows both ways at
// 50 frames/s keeps its call: no drop, every frame arrives, and traffic
// uses the new socket afterwards. The longest gap is logged.
func TestMigrateDuringMedia(t *testing.T) {
	for _, tr := range []client.Transport{client.QUIC, client.QUICDatagram} {
		t.Run(tr.String(), func(t *testing.T) {
			s := startServer(t, core.Config{})
			// quic-go uses ECN only on a *net.UDPConn and panics when a
			// connection moves from one to a wrapped socket, so wrap both.
			var socks []*countingConn
			restore := client.WrapUDPForTest(func(pc net.PacketConn) net.PacketConn {
				cc := &countingConn{PacketConn: pc}
				socks = append(socks, cc)
				return cc
			})
			defer restore()
			a, b := s.online(t, "alice", tr), s.online(t, "bob", client.TCP)
			call(t, a, b)
			const n = 75 // 1.5 s
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			var toA, toB received
			var errA, errB error
			wg.Go(func() { toB = receive(ctx, b, n*32) })
			wg.Go(func() { toA = receive(ctx, a, n*32) })
			wg.Go(func() { errA = play(a, 0, n) })
			wg.Go(func() { errB = play(b, 1000, n) })

			time.Sleep(500 * time.Millisecond)
			migrated := a.Migrate(ctx, "127.0.0.1")
			time.Sleep(100 * time.Millisecond)
			oldOut := socks[0].out.Load()
			wg.Wait()
			if migrated != nil {
				t.Fatalf("migrate: %v", migrated)
			}
			if errA != nil || errB != nil {
				t.Fatalf("send media: %v, %v", errA, errB)
			}
			if !bytes.Equal(toB.data, frames(0, n)) || toB.err != nil {
				t.Fatalf("alice→bob: %d of %d bytes (%v)", len(toB.data), n*32, toB.err)
			}
			if !bytes.Equal(toA.data, frames(1000, n)) || toA.err != nil {
				t.Fatalf("bob→alice: %d of %d bytes (%v)", len(toA.data), n*32, toA.err)
			}
			if len(socks) != 2 {
				t.Fatalf("%d sockets", len(socks))
			}
			if n, o := socks[1].in.Load(), socks[1].out.Load(); n < 50 || o < 50 {
				t.Fatalf("new socket: %d packets in, %d out", n, o)
			}
			if o := socks[0].out.Load(); o != oldOut {
				t.Fatalf("old socket still sending: %d packets after the switch", o-oldOut)
			}
			noEvent(t, a)
			noEvent(t, b)
			quiet(t, a)
			t.Logf("%v: longest media gap alice→bob %v, bob→alice %v (frames every 20ms)", tr, toB.maxGap, toA.maxGap)
		})
	}
}
