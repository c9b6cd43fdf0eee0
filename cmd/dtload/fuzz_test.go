package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// FuzzReadAccounts: an accounts file never crashes the reader; what it
// accepts is written back and read again unchanged, and reads as the
// accounts of its two halves (cut at a line end) joined.
func FuzzReadAccounts(f *testing.F) {
	f.Add("# dtload accounts: name password\nload0001 3f2a\nload0002 9c1b\n")
	f.Add("\n  alice pw  \n#x\n")
	f.Add("one-field\n")
	f.Add("a b c\n")
	f.Add(strings.Repeat("x", 70000) + " pw\n")
	f.Fuzz(func(t *testing.T, in string) {
		as, err := readAccounts(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, a := range as {
			// Each field on its own: joined, "\xc2" and "\x85" make U+0085,
			// a space (the fuzzer's find, kept in testdata).
			if a.name == "" || a.password == "" ||
				strings.IndexFunc(a.name, unicode.IsSpace) >= 0 || strings.IndexFunc(a.password, unicode.IsSpace) >= 0 {
				t.Fatalf("accepted %q", a)
			}
		}
		var b bytes.Buffer
		if err := writeAccounts(&b, as); err != nil {
			t.Fatal(err)
		}
		again, err := readAccounts(&b)
		if err != nil || !slices.Equal(again, as) {
			t.Fatalf("round trip: %v, %q != %q", err, again, as)
		}
		checkTwoFiles(t, in, as)
	})
}

// checkTwoFiles cuts an accepted accounts file at the line end after its
// middle: the two files read as the whole's accounts, split there (a part
// without accounts is refused, as any empty file is).
func checkTwoFiles(t *testing.T, in string, whole []account) {
	t.Helper()
	i := strings.IndexByte(in[len(in)/2:], '\n')
	if i < 0 {
		return
	}
	a, b := in[:len(in)/2+i+1], in[len(in)/2+i+1:]
	as, errA := readAccounts(strings.NewReader(a))
	bs, errB := readAccounts(strings.NewReader(b))
	if errA != nil && len(as) != 0 || errB != nil && len(bs) != 0 {
		t.Fatalf("accounts with an error: %v %v", errA, errB)
	}
	if joined := append(as, bs...); !slices.Equal(joined, whole) {
		t.Fatalf("%q + %q read as %q, the whole as %q", a, b, joined, whole)
	}
}

// FuzzReframer: media arriving from the server whole or in pieces of any
// size is cut into the stream's consecutive frames, none returned before it
// is complete, and the reframer then holds exactly the incomplete rest.
func FuzzReframer(f *testing.F) {
	f.Add([]byte(strings.Repeat("0123456789abcdef", 5)), uint8(32), []byte{1, 31, 32, 33})
	f.Add([]byte("short"), uint8(16), []byte{0, 0, 5})
	f.Add([]byte{}, uint8(1), []byte{})
	f.Fuzz(func(t *testing.T, stream []byte, size uint8, cuts []byte) {
		if size == 0 {
			return
		}
		collect := func(r *reframer, pieces [][]byte) (frames [][]byte) {
			for _, p := range pieces {
				r.feed(p, func(fr []byte) {
					if len(fr) != int(size) {
						t.Fatalf("frame of %d bytes, want %d", len(fr), size)
					}
					frames = append(frames, bytes.Clone(fr))
				})
			}
			return frames
		}
		var pieces [][]byte
		rest := stream
		for _, c := range cuts {
			n := min(int(c), len(rest))
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		pieces = append(pieces, rest)
		// Whole or in pieces, the frames are the stream's consecutive
		// size-byte pieces and the reframer holds exactly the rest.
		n := len(stream) / int(size) * int(size)
		for name, in := range map[string][][]byte{"whole": {stream}, "in pieces": pieces} {
			r := &reframer{size: int(size)}
			frames := collect(r, in)
			if got := bytes.Join(frames, nil); !bytes.Equal(got, stream[:n]) {
				t.Fatalf("%s: %d frames, not the stream's first %d bytes", name, len(frames), n)
			}
			if !bytes.Equal(r.buf, stream[n:]) {
				t.Fatalf("%s: the reframer holds %d bytes, want the %d after the last frame", name, len(r.buf), len(stream)-n)
			}
		}
	})
}
