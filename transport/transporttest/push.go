package transporttest

import (
	"testing"
	"time"
)

// ExpectDelivered fails t unless got (what a transport.Pusher's deliver
// handed on, one string per call) yields want, in order, each within 5 s.
func ExpectDelivered(t testing.TB, got <-chan string, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case g := <-got:
			if g != w {
				t.Fatalf("delivered %q, want %q", g, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%q not delivered", w)
		}
	}
}
