package quic_test

import (
	"context"
	"sync"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/transport/quic"
)

// TestStormWithStalledAcceptLoop: while the accept loop is stalled, more
// clients than quic-go's accept queue holds (32) finish their handshakes;
// none is refused, and every one is accepted once the loop runs again.
func TestStormWithStalledAcceptLoop(t *testing.T) {
	const n = 48
	e := startQUIC(t, core.Config{}, quic.Config{MaxConnsPerSource: 2 * n})
	stall, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	quic.SetAcceptHookForTest(e.srv, func() {
		select {
		case <-stall:
			<-resume
		default:
		}
	})
	close(stall) // the loop blocks before its next Accept
	t.Cleanup(func() { once.Do(func() { close(resume) }) })

	first := e.dialOK(t) // wakes the loop, which then stalls
	conns := make([]*quicgo.Conn, n)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() { conns[i] = e.dialOK(t) })
	}
	wg.Wait()
	time.Sleep(500 * time.Millisecond) // quic-go would refuse the 33rd by now
	for i, qc := range append(conns, first) {
		if err := qc.Context().Err(); err != nil {
			t.Fatalf("connection %d closed while the accept loop stalled: %v", i, contextCause(qc))
		}
	}
	once.Do(func() { close(resume) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := e.srv.Stats()
		if st.Handshakes["ok"] == n+1 {
			break
		}
		if time.Now().After(deadline) || st.Handshakes["failed"] > 0 {
			t.Fatalf("handshakes %v, want %d ok", st.Handshakes, n+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, qc := range conns {
		if err := qc.Context().Err(); err != nil {
			t.Fatalf("connection %d closed: %v", i, contextCause(qc))
		}
	}
}

// dialOK dials from 127.0.0.1 and fails t if the dial fails.
func (e *env) dialOK(t *testing.T) *quicgo.Conn {
	qc, err := e.tryDial(t, "127.0.0.1")
	if err != nil {
		t.Errorf("dial: %v", err)
		return nil
	}
	return qc
}

func contextCause(qc *quicgo.Conn) error { return context.Cause(qc.Context()) }
