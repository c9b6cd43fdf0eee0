package quic_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/dtcall/dtcall/core"
)

// TestChannelsOutliveCoreTimers: QUIC channels are watched by QUIC, so the
// core's login and idle deadlines must not end them. With both set to 1 s,
// an idle datagram user, an idle stream user and a re-registered datagram
// channel all stay callable long after, and a call outlives them too.
// (Datagram calls once died when the registration's deadline fired on the
// silent anchor stream.)
func TestChannelsOutliveCoreTimers(t *testing.T) {
	const timers = time.Second
	e := start(t, core.Config{LoginTimeout: timers, IdleTimeout: timers})
	a, b := e.online("alice", true), e.online("bob", false)
	time.Sleep(2*timers + 500*time.Millisecond) // idle past both deadlines

	talkOnce := func(round int) {
		t.Helper()
		call(t, a, b)
		for i := range 3 {
			time.Sleep(timers) // silent stretches inside the call, too
			a.sendMedia(frame(round*10 + i))
			if got := b.readStream(32); !bytes.Equal(got, frame(round*10+i)) {
				t.Fatalf("round %d: datagram→stream media %q, want %q", round, got, frame(round*10+i))
			}
			b.sendMedia(frame(round*10 + i + 5))
			if got := a.readDatagram(); !bytes.Equal(got, frame(round*10+i+5)) {
				t.Fatalf("round %d: stream→datagram media %q, want %q", round, got, frame(round*10+i+5))
			}
		}
		a.say("end", "bob")
		b.expect("call|end|alice")
	}
	talkOnce(0)
	a.registerMedia(true) // a new datagram channel, then idle again
	time.Sleep(2*timers + 500*time.Millisecond)
	talkOnce(1)
	a.quiet()
	b.quiet()
}
