package transporttest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/dtcall/dtcall/transport"
)

// frame is an AMR-sized media frame numbered i.
func frame(i int) []byte {
	f := fmt.Appendf(nil, "frame-%06d|", i)
	return append(f, pattern(32-len(f), byte(i))...)
}

// earlyMedia: media the peer sent right behind its registration, before
// the server read the registration, reaches ReadMedia.
func (s suite) earlyMedia(t *testing.T, mk MakeMediaPipe) {
	if s.f.NoEarlyMedia {
		t.Skip("this mode carries no media before its registration is bound")
	}
	early := bytes.Join([][]byte{frame(0), frame(1)}, nil)
	p := mediaPipe(t, mk(t, early), s.f)
	p.expectIn(t, early) // one message as the peer wrote it, or stream bytes
	p.send(t, frame(2))
	p.expectIn(t, frame(2))
}

// mediaIn: media from the peer reaches ReadMedia whole and in order, up to
// the framing's largest message.
func (s suite) mediaIn(t *testing.T, p *pipe) {
	in := [][]byte{frame(0), frame(1), frame(2)}
	p.send(t, in...)
	p.expectIn(t, in...)
	n := s.f.MaxMedia
	if s.f.MediaStream {
		n = 64 << 10
	}
	big := pattern(n, 5)
	wait := p.sendAsync(big) // may be larger than the transport's window
	p.expectIn(t, big)
	wait(t)
}

// mediaOut: WriteMedia keeps order, sends a frame as one message, a longer
// write as several in order, and does not keep the caller's slice.
func (s suite) mediaOut(t *testing.T, p *pipe) {
	for i := range 3 {
		f := frame(i)
		if err := p.write(f); err != nil {
			t.Fatalf("WriteMedia %d: %v", i, err)
		}
		copy(f, "overwritten by the caller")
	}
	p.expectOut(t, frame(0), frame(1), frame(2))
	n := 3*s.f.MaxMedia + 7
	if s.f.MediaStream {
		n = 256 << 10
	}
	big := pattern(n, 9)
	if err := p.write(bytes.Clone(big)); err != nil {
		t.Fatalf("WriteMedia of %d bytes: %v", n, err)
	}
	p.expectOutBytes(t, time.Now().Add(soon), big)
}

// keepalive: where the framing tells a keepalive, ReadMedia skips it
// (and keeps waiting); where it cannot, a "D" is media like any other.
func (s suite) keepalive(t *testing.T, p *pipe) {
	k := s.f.Keepalive
	if k == nil {
		p.send(t, []byte("D"), frame(1))
		p.expectIn(t, []byte("D"), frame(1))
		return
	}
	p.send(t, k, frame(1), k, k, frame(2), k)
	p.expectIn(t, frame(1), frame(2))
	p.conn.SetReadDeadline(time.Now().Add(blockedAfter))
	if b, err := p.read(); err == nil {
		t.Fatalf("ReadMedia returned %s, want the trailing keepalive skipped", show(b))
	}
}

// refuse: Refuse returns at once and ends the channel (Close follows, as
// in the core); the peer sees the end, and the refusal where the
// transport can tell it.
func (s suite) refuse(t *testing.T, p *pipe) {
	const r = transport.RefuseSession
	returns(t, async(func() error { p.media.Refuse(r); return nil }), "Refuse")
	returns(t, async(p.conn.Close), "Close after Refuse")
	err := p.peer.WaitEnd(time.Now().Add(soon))
	if err == nil {
		t.Fatalf("the peer did not see the refused channel end within %v", soon)
	}
	if rp, ok := p.peer.(RefusalPeer); ok {
		if got, ok := rp.Refusal(err); !ok || got != r {
			t.Fatalf("the peer saw %v (refusal %#x, %v); want refusal %#x", err, uint64(got), ok, uint64(r))
		}
	}
}

// datagrams: a channel without datagram mode refuses EnableDatagrams and
// carries on in its own mode.
func (s suite) datagrams(t *testing.T, p *pipe) {
	if !s.f.NoDatagrams {
		t.Skip("the channel has a datagram mode; its own pipe runs the suite")
	}
	if err := p.media.EnableDatagrams(); err == nil {
		t.Fatal("EnableDatagrams succeeded on a channel without datagrams")
	}
	p.send(t, frame(1))
	p.expectIn(t, frame(1))
	if err := p.write(frame(2)); err != nil {
		t.Fatal(err)
	}
	p.expectOut(t, frame(2))
}
