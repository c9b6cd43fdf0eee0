package quic

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/dtcall/dtcall/wire"
)

// lines splits input with readLine, as the server reads a stream.
func lines(r io.Reader) ([]string, error) {
	br := bufio.NewReaderSize(r, 2*maxLine)
	var out []string
	for range 100000 { // bounded: each pass consumes input
		l, err := readLine(br)
		if err != nil {
			return out, err
		}
		out = append(out, string(l))
	}
	return out, errors.New("too many lines")
}

func TestReadLine(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 3*maxLine)
	in := "1|login|a|b\nD\n\n" + string(long) + "\nlast|line\npartial"
	got, err := lines(iotest.OneByteReader(bytes.NewReader([]byte(in))))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("err = %v", err)
	}
	want := []string{"1|login|a|b", "D", "", string(long[:maxLine+1]), "last|line"}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %.40q…, want %.40q…", i, got[i], want[i])
		}
	}
	if _, err := wire.ParseCommand([]byte(got[3])); !errors.Is(err, wire.ErrTooLong) {
		t.Errorf("overlong line parsed: %v", err)
	}
}

// FuzzReadLine feeds a stream whole and in two pieces (two reads, as a
// stream may deliver it): the lines must be the same, none longer than
// maxLine+1 bytes, and none containing "\n".
func FuzzReadLine(f *testing.F) {
	for _, s := range []string{
		"1764168000|login|zapper|railgun\n",
		"D\n1764168000|lookup|zapper|42\n",
		"1764168000|6144737382751829473|datagram\n\x00\x01media",
		string(bytes.Repeat([]byte("y"), 2500)) + "\nz\n",
	} {
		f.Add([]byte(s), len(s)/2)
	}
	f.Fuzz(func(t *testing.T, in []byte, cut int) {
		whole, werr := lines(bytes.NewReader(in))
		if cut < 0 || cut > len(in) {
			cut = len(in) / 2
		}
		split, serr := lines(io.MultiReader(bytes.NewReader(in[:cut]), bytes.NewReader(in[cut:])))
		if (werr == nil) != (serr == nil) || len(whole) != len(split) {
			t.Fatalf("whole: %d lines (%v); in two pieces: %d lines (%v)", len(whole), werr, len(split), serr)
		}
		for i := range whole {
			if whole[i] != split[i] {
				t.Fatalf("line %d differs", i)
			}
			if len(whole[i]) > maxLine+1 || bytes.IndexByte([]byte(whole[i]), '\n') >= 0 {
				t.Fatalf("line %d: %d bytes or a newline", i, len(whole[i]))
			}
		}
	})
}
