package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// FuzzReadAccounts: an accounts file never crashes the reader, and what it
// accepts is written back and read again unchanged.
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
			if a.name == "" || a.password == "" || strings.IndexFunc(a.name+a.password, unicode.IsSpace) >= 0 {
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
	})
}

// FuzzReframer: media arriving from the server in pieces of any size is
// cut into the same frames as when it arrives whole, and no frame is
// returned before it is complete.
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
		whole := collect(&reframer{size: int(size)}, [][]byte{stream})
		var pieces [][]byte
		rest := stream
		for _, c := range cuts {
			n := min(int(c), len(rest))
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		pieces = append(pieces, rest)
		split := collect(&reframer{size: int(size)}, pieces)
		if !slices.EqualFunc(whole, split, bytes.Equal) {
			t.Fatalf("%d frames whole, %d in pieces, or different bytes", len(whole), len(split))
		}
		if want := len(stream) / int(size); len(whole) != want {
			t.Fatalf("%d frames from %d bytes of %d-byte frames", len(whole), len(stream), size)
		}
	})
}
