package transporttest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/dtcall/dtcall/transport"
)

// pipe is a channel under test seen through the operations the common
// checks use: ReadMessage/WriteMessage for a command channel,
// ReadMedia/WriteMedia for a media channel.
type pipe struct {
	conn   transport.Conn
	media  transport.MediaConn // nil for a command channel
	peer   Peer
	origin any // the client's command channel's Origin, or nil

	read      func() ([]byte, error)
	write     func([]byte) error
	peerWrite func([]byte) error
	peerRead  func(time.Time) ([]byte, error)

	stream     bool   // media as stream bytes: boundaries are not kept
	maxOut     int    // longest write that arrives at the peer as one message
	chunk      int    // size of one write when filling a stalled peer
	lossy      bool   // writes to a stalled peer may be dropped
	terminator string // stripped by the peer's ReadMessage
}

func commandPipe(p Pipe, f Framing) *pipe {
	return &pipe{
		conn: p.Conn, peer: p.Peer,
		read: p.Conn.ReadMessage, write: p.Conn.WriteMessage,
		peerWrite: p.Peer.WriteMessage, peerRead: p.Peer.ReadMessage,
		maxOut: 1 << 30, chunk: 8 << 10, terminator: f.Terminator,
	}
}

func mediaPipe(t *testing.T, p MediaPipe, f Framing) *pipe {
	if f.MaxMedia <= 0 && !f.MediaStream {
		t.Fatal("Framing.MaxMedia must be set for media that keeps boundaries")
	}
	chunk := 8 << 10
	if !f.MediaStream {
		chunk = min(chunk, f.MaxMedia)
	}
	return &pipe{
		conn: p.Conn, media: p.Conn, peer: p.Peer, origin: p.Origin,
		read: p.Conn.ReadMedia, write: p.Conn.WriteMedia,
		peerWrite: p.Peer.WriteMedia, peerRead: p.Peer.ReadMedia,
		stream: f.MediaStream, maxOut: f.MaxMedia, chunk: chunk, lossy: f.Lossy,
	}
}

// send writes each message from the peer.
func (p *pipe) send(t *testing.T, msgs ...[]byte) {
	t.Helper()
	for _, m := range msgs {
		if err := p.peerWrite(m); err != nil {
			t.Fatalf("peer write %s: %v", show(m), err)
		}
	}
}

// sendAsync is send from another goroutine, for messages larger than the
// transport's flow-control window (the channel must read while the peer
// writes); wait reports the writes' outcome.
func (p *pipe) sendAsync(msgs ...[]byte) (wait func(t *testing.T)) {
	done := make(chan error, 1)
	go func() {
		for _, m := range msgs {
			if err := p.peerWrite(m); err != nil {
				done <- fmt.Errorf("peer write %s: %w", show(m), err)
				return
			}
		}
		done <- nil
	}()
	return func(t *testing.T) {
		t.Helper()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// expectIn reads msgs at the channel: one read each, or, for stream media,
// the same bytes in any number of reads.
func (p *pipe) expectIn(t *testing.T, msgs ...[]byte) {
	t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(soon))
	defer p.conn.SetReadDeadline(time.Time{})
	if p.stream {
		want := bytes.Join(msgs, nil)
		var got []byte
		for len(got) < len(want) {
			b, err := p.read()
			if err != nil {
				t.Fatalf("read after %d of %d bytes: %v", len(got), len(want), err)
			}
			got = append(got, b...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read %s, want %s", show(got), show(want))
		}
		return
	}
	for i, want := range msgs {
		got, err := p.read()
		if err != nil {
			t.Fatalf("read message %d (%s): %v", i, show(want), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("read message %d = %s, want %s", i, show(got), show(want))
		}
	}
}

// expectOut reads at the peer what the channel wrote as msgs: one message
// each (without the terminator a line framing adds), or for stream media
// the same bytes.
func (p *pipe) expectOut(t *testing.T, msgs ...[]byte) {
	t.Helper()
	deadline := time.Now().Add(soon)
	if p.stream {
		p.expectOutBytes(t, deadline, bytes.Join(msgs, nil))
		return
	}
	for i, m := range msgs {
		want := m
		if p.terminator != "" {
			want = bytes.TrimSuffix(m, []byte(p.terminator))
		}
		got, err := p.peerRead(deadline)
		if err != nil {
			t.Fatalf("peer read message %d (%s): %v", i, show(want), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("peer read message %d = %s, want %s", i, show(got), show(want))
		}
	}
}

// expectOutBytes reads at the peer until it has len(want) bytes, in pieces
// of at most maxOut unless media is a stream, and compares.
func (p *pipe) expectOutBytes(t *testing.T, deadline time.Time, want []byte) {
	t.Helper()
	var got []byte
	for len(got) < len(want) {
		b, err := p.peerRead(deadline)
		if err != nil {
			t.Fatalf("peer read after %d of %d bytes: %v", len(got), len(want), err)
		}
		if !p.stream && len(b) > p.maxOut {
			t.Fatalf("peer read a message of %d bytes, more than the framing's %d", len(b), p.maxOut)
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("peer read %s, want %s", show(got), show(want))
	}
}

// async runs f in a goroutine and delivers its error.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// readAsync starts a read of the channel.
func (p *pipe) readAsync() <-chan error {
	return async(func() error { _, err := p.read(); return err })
}

// returns waits at most soon for ch and returns its error.
func returns(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(soon):
		t.Fatalf("%s did not return within %v", what, soon)
		return nil
	}
}

// blocks checks that ch does not deliver within blockedAfter.
func blocks(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s returned (%v); it should block", what, err)
	case <-time.After(blockedAfter):
	}
}

// failsWithTimeout checks that err is a timeout: a net.Error whose
// Timeout is true, or os.ErrDeadlineExceeded.
func failsWithTimeout(t *testing.T, err error, what string) {
	t.Helper()
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("%s succeeded; want a timeout error", what)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
	default:
		t.Fatalf("%s failed with %v (%T); want a timeout error", what, err, err)
	}
}

// pattern is n bytes that show where they were cut: no '\n', so they fit
// in a line.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'A' + (seed+byte(i%23)+byte(i/23))%26
	}
	return b
}

func show(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q… (%d bytes)", b[:40], len(b))
	}
	return fmt.Sprintf("%q", b)
}
