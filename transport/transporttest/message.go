package transporttest

import (
	"bytes"
	"testing"
	"time"
)

// messages: messages from the peer that arrive together are read one per
// ReadMessage; each WriteMessage is one message at the peer, the line
// terminator added once, never doubled, and the caller's slice untouched.
func (s suite) messages(t *testing.T, p *pipe) {
	in := [][]byte{[]byte("1764168000|login|zapper|railgun"), []byte("D"), []byte("x|y\x00\xff")}
	p.send(t, in...)
	p.expectIn(t, in...)

	out := [][]byte{[]byte("1764168000|resp|login|42"), []byte("1764168000|resp|invalid|command\n"), []byte("D")}
	for _, m := range out {
		// Spare capacity full of sentinels: WriteMessage must not write
		// into it (appending the terminator in place would).
		buf := append(bytes.Clone(m), bytes.Repeat([]byte{'#'}, 8)...)
		msg := buf[:len(m)]
		if err := p.conn.WriteMessage(msg); err != nil {
			t.Fatalf("WriteMessage(%s): %v", show(m), err)
		}
		if !bytes.Equal(buf[len(m):], bytes.Repeat([]byte{'#'}, 8)) || !bytes.Equal(msg, m) {
			t.Fatalf("WriteMessage(%s) changed its argument's bytes: %q", show(m), buf)
		}
	}
	p.expectOut(t, out...)
}

// oversize: a message of MaxMessage bytes arrives whole; a longer one is
// cut or split as the framing documents, and the channel carries on.
func (s suite) oversize(t *testing.T, p *pipe) {
	max := s.f.MaxMessage
	if max <= 0 {
		t.Fatal("Framing.MaxMessage must be set")
	}
	whole := pattern(max, 3)
	p.send(t, whole)
	p.expectIn(t, whole)
	for _, n := range []int{2*max + 100, 10*max + 3} {
		long := pattern(n, byte(n))
		wait := p.sendAsync(long, []byte("after"))
		p.conn.SetReadDeadline(time.Now().Add(soon))
		if s.f.CutOversize {
			p.expectCut(t, long, max)
		} else {
			p.expectSplit(t, long, max)
		}
		p.expectIn(t, []byte("after"))
		wait(t)
	}
}

// expectCut reads one message: a prefix of long, longer than max.
func (p *pipe) expectCut(t *testing.T, long []byte, max int) {
	t.Helper()
	got, err := p.read()
	if err != nil {
		t.Fatalf("read a %d-byte message: %v", len(long), err)
	}
	if len(got) <= max || !bytes.HasPrefix(long, got) {
		t.Fatalf("a %d-byte message read as %s: want a prefix of it longer than %d bytes", len(long), show(got), max)
	}
}

// expectSplit reads long in messages of at most max bytes.
func (p *pipe) expectSplit(t *testing.T, long []byte, max int) {
	t.Helper()
	var got []byte
	for len(got) < len(long) {
		b, err := p.read()
		if err != nil {
			t.Fatalf("read a %d-byte message after %d bytes: %v", len(long), len(got), err)
		}
		if len(b) > max {
			t.Fatalf("read a message of %d bytes; the framing's limit is %d", len(b), max)
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, long) {
		t.Fatalf("a %d-byte message read as %s", len(long), show(got))
	}
}
