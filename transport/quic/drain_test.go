package quic_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/core"
)

// TestDrainClosesIdleSessionsWithCode: when a drain begins, every session
// not in a call ends at once, and its client learns why from the close
// code, "server shutting down" (0x202), never from a bare end of its
// command stream. Several rounds of four sessions, since a FIN sent ahead
// of the code reaches only some clients first.
func TestDrainClosesIdleSessionsWithCode(t *testing.T) {
	const rounds = 5
	users := []string{"alice", "bob", "carol", "dave"}
	var bad int
	for round := range rounds {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			e := start(t, core.Config{})
			var phones []*phone
			for i, u := range users {
				phones = append(phones, e.online(u, i%2 == 1))
			}
			e.srv.CloseListeners()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			begun := time.Now()
			e.core.Shutdown(ctx)
			for _, p := range phones {
				err := readUntilEnd(p)
				var appErr *quicgo.ApplicationError
				if !errors.As(err, &appErr) || !appErr.Remote || appErr.ErrorCode != 0x202 {
					bad++
					t.Errorf("%s: command stream ended with %v, want the server's close code 0x202", p.user, err)
					continue
				}
				if d := time.Since(begun); d > 2*time.Second {
					t.Errorf("%s: closed %v after the drain began, want at once", p.user, d)
				}
			}
		})
	}
	t.Logf("%d of %d idle sessions ended without the close code", bad, rounds*len(users))
}

// readUntilEnd reads p's command stream until it ends (within 5 s) and
// returns why.
func readUntilEnd(p *phone) error {
	p.cmd.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, p.cmd)
	if err == nil {
		err = io.EOF
	}
	return err
}
