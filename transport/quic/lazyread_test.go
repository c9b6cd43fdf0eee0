package quic_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/transport/quic"
)

// waitBuffers waits up to 5 s until the server's streams hold want read
// buffers.
func waitBuffers(t *testing.T, srv *quic.Server, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for quic.ReadBuffersForTest(srv) != want {
		if time.Now().After(deadline) {
			t.Fatalf("streams hold %d read buffers, want %d", quic.ReadBuffersForTest(srv), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIdleStreamsHoldNoReadBuffer: logged-in clients between calls hold no
// read buffer on either stream (stream or datagram mode); a command that
// arrives in two pieces, and a call's media, read as before, and the media
// stream gives its buffer back once the call's frames stop.
func TestIdleStreamsHoldNoReadBuffer(t *testing.T) {
	e := start(t, core.Config{})
	a, b := e.online("alice", false), e.online("bob", false)
	e.online("carol", true)
	waitBuffers(t, e.srv, 0)

	line := now() + "|lookup|bob|" + a.sid + "\n"
	if _, err := a.cmd.Write([]byte(line[:7])); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the server waits for the rest holding its buffer
	if _, err := a.cmd.Write([]byte(line[7:])); err != nil {
		t.Fatal(err)
	}
	a.expect("lookup|bob|exists")

	call(t, a, b)
	var sent, got []byte
	held := false
	for i := range 60 { // 1.2 s of a call's frames
		f := frame(i)
		a.sendMedia(f)
		sent = append(sent, f...)
		got = append(got, b.readStream(len(f))...)
		held = held || quic.ReadBuffersForTest(e.srv) > 0
		time.Sleep(20 * time.Millisecond)
	}
	if !bytes.Equal(got, sent) {
		t.Fatalf("bob got %d bytes that differ from the %d alice sent", len(got), len(sent))
	}
	if !held {
		t.Error("alice's media stream held no buffer while her frames came")
	}
	waitBuffers(t, e.srv, 0) // the frames stopped; the call goes on
}
