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
	br := bufio.NewReaderSize(r, commandBuffer)
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

// FuzzReadLine feeds a stream whole, in two pieces (two reads, as a
// stream may deliver it) and byte by byte: each way the lines are those of
// the stream (modelLines: every "\n"-terminated line, cut to maxLine+1
// bytes when longer; a last line without "\n" is none), so the reader's
// state after two pieces is its state after one.
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
		if cut < 0 || cut > len(in) {
			cut = len(in) / 2
		}
		if bytes.Count(in, []byte("\n")) >= 100000 {
			return // more than lines reads
		}
		want := modelLines(in)
		for name, r := range map[string]io.Reader{
			"whole":      bytes.NewReader(in),
			"two pieces": io.MultiReader(bytes.NewReader(in[:cut]), bytes.NewReader(in[cut:])),
			"one byte":   iotest.OneByteReader(bytes.NewReader(in)),
		} {
			got, err := lines(r)
			if !errors.Is(err, io.EOF) || len(got) != len(want) {
				t.Fatalf("%s: %d lines (%v), want %d and EOF", name, len(got), err, len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: line %d = %.40q… (%d bytes), want %.40q… (%d bytes)", name, i, got[i], len(got[i]), want[i], len(want[i]))
				}
			}
		}
	})
}

// modelLines is what readLine returns for in, line by line.
func modelLines(in []byte) []string {
	var out []string
	for {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			return out
		}
		out = append(out, string(in[:min(i, maxLine+1)]))
		in = in[i+1:]
	}
}
