package client_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/core"
)

// In the stream modes the first ReadMedia takes reading over from the
// Media's own reader: media that arrived before it is returned first and
// in order, a read whose context ends returns the context's error and
// leaves the channel working, and media keeps flowing afterwards.
func TestReadMediaTakesOver(t *testing.T) {
	for _, tr := range []client.Transport{client.TCP, client.QUIC} {
		t.Run(tr.String(), func(t *testing.T) {
			t.Parallel()
			s := startServer(t, core.Config{})
			a, b := s.online(t, "alice", tr), s.online(t, "bob", tr)
			call(t, a, b)
			// Bob reads nothing while these arrive: they wait in his Media.
			early := frames(0, 8)
			sendFrames(t, a, early)
			time.Sleep(200 * time.Millisecond)
			if got := readMedia(t, b, len(early)); !bytes.Equal(got, early) {
				t.Fatalf("media sent before the first read: got %q, want %q", got, early)
			}
			for range 3 {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				_, err := b.Media().ReadMedia(ctx)
				cancel()
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("a read with nothing to read and a 50 ms context: %v", err)
				}
			}
			if err := b.Media().Err(); err != nil {
				t.Fatalf("the ended reads failed the channel: %v", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := b.Media().ReadMedia(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("a read with an ended context: %v", err)
			}
			exchange(t, a, b, 4)
		})
	}
}
