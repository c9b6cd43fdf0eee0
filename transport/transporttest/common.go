package transporttest

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pastReadDeadline: a deadline in the past fails a read at once, with a
// timeout error.
func (s suite) pastReadDeadline(t *testing.T, p *pipe) {
	p.conn.SetReadDeadline(time.Now().Add(-time.Second))
	failsWithTimeout(t, returns(t, p.readAsync(), "read past its deadline"), "read past its deadline")
}

// pastWriteDeadline: a deadline in the past fails a write at once, with a
// timeout error, and nothing reaches the peer.
func (s suite) pastWriteDeadline(t *testing.T, p *pipe) {
	p.conn.SetWriteDeadline(time.Now().Add(-time.Second))
	err := returns(t, async(func() error { return p.write([]byte("late")) }), "write past its deadline")
	failsWithTimeout(t, err, "write past its deadline")
	if b, err := p.peerRead(time.Now().Add(blockedAfter)); err == nil {
		t.Fatalf("the peer got %s from a write that failed its deadline", show(b))
	}
}

// readDeadlineExpires: a deadline that passes during a read ends it with a
// timeout, not before; a later deadline arms again; clearing it lets reads
// work again.
func (s suite) readDeadlineExpires(t *testing.T, p *pipe) {
	for i := range 2 {
		const wait = 200 * time.Millisecond
		start := time.Now()
		p.conn.SetReadDeadline(start.Add(wait))
		err := returns(t, p.readAsync(), "read with a deadline")
		failsWithTimeout(t, err, fmt.Sprintf("read %d with a deadline", i))
		if el := time.Since(start); el < wait-20*time.Millisecond {
			t.Fatalf("read %d timed out after %v, before its deadline of %v", i, el, wait)
		}
	}
	p.conn.SetReadDeadline(time.Time{})
	p.send(t, []byte("after the timeouts"))
	p.expectIn(t, []byte("after the timeouts"))
}

// deadlineUnblocksRead: moving the read deadline into the past from
// another goroutine ends a blocked read (how the core unblocks readers).
func (s suite) deadlineUnblocksRead(t *testing.T, p *pipe) {
	p.conn.SetReadDeadline(time.Now().Add(time.Hour))
	rd := p.readAsync()
	blocks(t, rd, "read with nothing to read")
	p.conn.SetReadDeadline(time.Now().Add(-time.Second))
	failsWithTimeout(t, returns(t, rd, "read after its deadline moved into the past"), "blocked read")
}

// closeUnblocksRead: Close from another goroutine ends a blocked read.
func (s suite) closeUnblocksRead(t *testing.T, p *pipe) {
	rd := p.readAsync()
	blocks(t, rd, "read with nothing to read")
	cl := async(p.conn.Close)
	if err := returns(t, rd, "read blocked across Close"); err == nil {
		t.Fatal("blocked read returned no error after Close")
	}
	returns(t, cl, "Close")
}

// maxFill bounds what a stalled peer is sent before its writer must have
// blocked: more than any socket and flow-control window holds.
const maxFill = 64 << 20

// closeUnblocksWrite: with the peer stalled, writes come to block (unless
// the framing may drop them), and Close from another goroutine ends the
// blocked write with an error.
func (s suite) closeUnblocksWrite(t *testing.T, p *pipe) {
	p.peer.Stall()
	var written atomic.Int64
	chunk := pattern(p.chunk, 7)
	wr := async(func() error {
		for written.Load() < maxFill {
			if err := p.write(chunk); err != nil {
				return err
			}
			written.Add(int64(len(chunk)))
		}
		return nil
	})
	blocked := waitBlocked(t, wr, &written)
	if !blocked && !p.lossy {
		t.Fatalf("%d MiB of writes to a stalled peer never blocked", written.Load()>>20)
	}
	cl := async(p.conn.Close)
	if blocked {
		if err := returns(t, wr, "write blocked across Close"); err == nil {
			t.Fatal("blocked write returned no error after Close")
		}
	}
	returns(t, cl, "Close")
	t.Logf("blocked=%v after %d KiB", blocked, written.Load()>>10)
}

// waitBlocked watches a filling writer until it makes no progress for
// 2*blockedAfter (blocked: true) or ends (false). It fails the test if the
// writer fails before Close.
func waitBlocked(t *testing.T, wr <-chan error, written *atomic.Int64) bool {
	t.Helper()
	last, since := int64(-1), time.Now()
	for limit := time.Now().Add(30 * time.Second); time.Now().Before(limit); {
		select {
		case err := <-wr:
			if err != nil {
				t.Fatalf("write to a stalled peer failed after %d KiB, before Close: %v", written.Load()>>10, err)
			}
			return false
		case <-time.After(20 * time.Millisecond):
		}
		if n := written.Load(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > 2*blockedAfter {
			return true
		}
	}
	t.Fatalf("writes to a stalled peer still going after 30 s (%d MiB)", written.Load()>>20)
	return false
}

// closeConcurrent: Close from many goroutines at once, then again, with a
// read blocked: every call returns, the read ends.
func (s suite) closeConcurrent(t *testing.T, p *pipe) {
	rd := p.readAsync()
	blocks(t, rd, "read with nothing to read")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { p.conn.Close(); p.conn.Close() })
	}
	returns(t, async(func() error { wg.Wait(); return nil }), "concurrent Close calls")
	returns(t, rd, "read blocked across Close")
	returns(t, async(p.conn.Close), "Close after Close")
}

// afterClose: after Close, reads and writes fail at once and the peer
// sees the channel end.
func (s suite) afterClose(t *testing.T, p *pipe) {
	returns(t, async(p.conn.Close), "Close")
	if err := returns(t, p.readAsync(), "read after Close"); err == nil {
		t.Error("read after Close succeeded")
	}
	wr := async(func() error { return p.write([]byte("after close")) })
	if err := returns(t, wr, "write after Close"); err == nil {
		t.Error("write after Close succeeded")
	}
	if err := p.peer.WaitEnd(time.Now().Add(soon)); err == nil {
		t.Errorf("the peer did not see the channel end within %v of Close", soon)
	}
}

// concurrentReadWrite: one goroutine reads while another writes, and a
// third moves both deadlines, as the core's reader, writer and session do.
// Run with -race.
func (s suite) concurrentReadWrite(t *testing.T, p *pipe) {
	const n = 40
	msg := func(dir string, i int) []byte { return fmt.Appendf(nil, "%s-%03d-%s", dir, i, pattern(20, byte(i))) }
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	report := func(err error) {
		if err != nil {
			errs <- err
		}
	}
	wg.Go(func() { report(p.receive(n, func(i int) []byte { return msg("in", i) })) })
	wg.Go(func() { report(p.peerReceive(n, func(i int) []byte { return msg("out", i) })) })
	wg.Go(func() { report(sendAll(n, p.write, func(i int) []byte { return msg("out", i) })) })
	wg.Go(func() { report(sendAll(n, p.peerWrite, func(i int) []byte { return msg("in", i) })) })
	wg.Go(func() {
		for range n {
			p.conn.SetReadDeadline(time.Now().Add(4 * soon))
			p.conn.SetWriteDeadline(time.Now().Add(4 * soon))
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func sendAll(n int, write func([]byte) error, msg func(int) []byte) error {
	for i := range n {
		if err := write(msg(i)); err != nil {
			return fmt.Errorf("write %d: %w", i, err)
		}
	}
	return nil
}

// receive reads n messages msg(0..n-1) at the channel (all their bytes,
// for stream media; for lossy media at least half, in order).
func (p *pipe) receive(n int, msg func(int) []byte) error {
	return collect(n, msg, p.stream, p.lossy, func() ([]byte, error) { return p.read() })
}

// peerReceive is receive at the peer.
func (p *pipe) peerReceive(n int, msg func(int) []byte) error {
	deadline := time.Now().Add(2 * soon)
	return collect(n, msg, p.stream, p.lossy, func() ([]byte, error) {
		b, err := p.peerRead(deadline)
		if p.terminator != "" {
			b = bytes.TrimSuffix(b, []byte(p.terminator))
		}
		return b, err
	})
}

func collect(n int, msg func(int) []byte, stream, lossy bool, read func() ([]byte, error)) error {
	var want []byte
	for i := range n {
		want = append(want, msg(i)...)
	}
	var got []byte
	for len(got) < len(want) {
		b, err := read()
		if err != nil {
			if lossy && len(got) >= len(want)/2 {
				break
			}
			return fmt.Errorf("read after %d of %d bytes: %w", len(got), len(want), err)
		}
		got = append(got, b...)
	}
	switch {
	case stream && !bytes.Equal(got, want):
		return fmt.Errorf("read %s, want %s", show(got), show(want))
	case !stream && !inOrder(got, n, msg, lossy):
		return fmt.Errorf("read %s: not the messages sent, in order", show(got))
	}
	return nil
}

// inOrder reports whether got is msg(0..n-1) joined, or with lossy an
// in-order selection of them.
func inOrder(got []byte, n int, msg func(int) []byte, lossy bool) bool {
	for i := 0; i < n && len(got) > 0; i++ {
		m := msg(i)
		if bytes.HasPrefix(got, m) {
			got = got[len(m):]
		} else if !lossy {
			return false
		}
	}
	return len(got) == 0
}

// bufferValid: the slice a read returns stays as it was until the next
// read, even when more arrives meanwhile.
func (s suite) bufferValid(t *testing.T, p *pipe) {
	first, second := pattern(100, 1), pattern(100, 2)
	p.conn.SetReadDeadline(time.Now().Add(soon))
	p.send(t, first)
	var got []byte
	for len(got) < len(first) { // stream media may come in pieces
		b, err := p.read()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 && len(b) == len(first) {
			got = b // not a copy: the channel's own slice
			break
		}
		got = append(got, b...)
	}
	keep := bytes.Clone(got)
	p.send(t, second)
	time.Sleep(100 * time.Millisecond) // let it arrive and be buffered
	if !bytes.Equal(got, keep) {
		t.Fatalf("the slice of the last read changed before the next read: %s, was %s", show(got), show(keep))
	}
	p.conn.SetReadDeadline(time.Time{})
	p.expectIn(t, second)
}

// addr: RemoteAddr is the peer's address; Origin is set, comparable, the
// same on every call, and a media channel's is its command channel's.
func (s suite) addr(t *testing.T, p *pipe) {
	if got, want := p.conn.RemoteAddr(), p.peer.LocalAddr(); got != want || !got.IsValid() || got.Port() == 0 {
		t.Errorf("RemoteAddr() = %v, want the peer's %v", got, want)
	}
	o := p.conn.Origin()
	switch {
	case o == nil:
		t.Fatal("Origin() is nil")
	case !reflect.ValueOf(o).Comparable():
		t.Fatalf("Origin() %T is not comparable", o)
	case o != p.conn.Origin():
		t.Error("Origin() differs between calls")
	case p.origin != nil && o != p.origin:
		t.Errorf("media Origin() %v is not its command channel's %v", o, p.origin)
	}
}
