package client_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/internal/netnstest"
	"github.com/dtcall/dtcall/internal/testserver"
)

// TestVanishedTCPPathEndsTheCall cuts the network under a legacy (TCP) call
// (PROTOCOL.md, "Liveness during a call"): the server and both phones sit
// in network namespaces of the test's, joined by a veth link that the test
// takes down, so nothing is acknowledged any more and nobody is told. Both
// phones must report the lost server within 3 s, whether they were talking
// or silent. Before the cut, a talking call sends the server nothing on the
// command connections (its media keeps the path watched), and a silent
// one stays up past the 1.5 s of TCP_USER_TIMEOUT.
func TestVanishedTCPPathEndsTheCall(t *testing.T) {
	for _, talking := range []bool{true, false} {
		name := map[bool]string{true: "talking", false: "silent"}[talking]
		t.Run(name, func(t *testing.T) {
			path := netnstest.New(t)
			s := startServerWith(t, testserver.Config{Host: netnstest.ServerIP, ListenIn: path.InServer})
			restore := client.DialTCPForTest(func(ctx context.Context, d *net.Dialer, addr string) (c net.Conn, err error) {
				if nerr := path.InClient(func() { c, err = d.DialContext(ctx, "tcp", addr) }); nerr != nil {
					return nil, nerr
				}
				return c, err
			})
			t.Cleanup(restore)
			o := s.options(client.TCP)
			o.Server = netnstest.ServerIP
			online := func(user string) *client.Client {
				c := s.dial(t, o)
				if err := c.Login(context.Background(), user, "pw-"+user); err != nil {
					t.Fatalf("%s: login: %v", user, err)
				}
				if err := c.RegisterMedia(context.Background()); err != nil {
					t.Fatalf("%s: register media: %v", user, err)
				}
				return c
			}
			a, b := online("alice"), online("bob")
			call(t, a, b)
			exchange(t, a, b, 2)

			ctx, stopTalking := context.WithCancel(context.Background())
			var talkers sync.WaitGroup
			defer talkers.Wait()
			defer stopTalking()
			if talking {
				for _, c := range []*client.Client{a, b} {
					talkers.Go(func() { sendUntil(ctx, c) })
				}
			}
			// Past TCP_USER_TIMEOUT with the path up: the call holds, and
			// the command connections carry nothing (no "D" during a call
			// while media flows, nor while it does not: the "D" goes on
			// the media connection).
			before := path.ServerBytesReceived(t, s.commandPort)
			time.Sleep(2 * time.Second)
			if got := path.ServerBytesReceived(t, s.commandPort) - before; got != 0 {
				t.Errorf("the command connections carried %d bytes in 2 s of a call, want none", got)
			}
			for _, c := range []*client.Client{a, b} {
				if err := c.Err(); err != nil {
					t.Fatalf("%s: %v with the path up", c.User(), err)
				}
				noEvent(t, c)
			}

			path.Cut(t)
			cutAt := time.Now()
			var wg sync.WaitGroup
			for _, c := range []*client.Client{a, b} {
				wg.Go(func() {
					for range c.Events() {
					}
					took, err := time.Since(cutAt), c.Err()
					t.Logf("%s: %v after %v", c.User(), err, took.Round(time.Millisecond))
					if !errors.Is(err, client.ErrLostServer) || took > 3*time.Second {
						t.Errorf("%s: Err %v after %v, want ErrLostServer within 3 s", c.User(), err, took)
					}
				})
			}
			wg.Wait()
		})
	}
}

// sendUntil writes a 32-byte frame every 20 ms on c's media until ctx ends
// or a write fails.
func sendUntil(ctx context.Context, c *client.Client) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	frame := make([]byte, 32)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if c.Media().WriteMedia(frame) != nil {
				return
			}
		}
	}
}
