package conffile

import (
	"bytes"
	"errors"
	"maps"
	"testing"
)

// FuzzLegacy checks that Unmarshal never panics; that the document cut in
// two at the line end at or after cut parses, half by half, to the state of
// the whole (the same keys, or the same first error, its line shifted for
// the second half); that Lines agrees with Unmarshal; and that Marshal
// round-trips every map Unmarshal produces.
func FuzzLegacy(f *testing.F) {
	f.Add([]byte("command = 1991  # port\r\nmedia = 2014\npublic = \"a#b\"\n"), uint16(15))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		whole, err := Legacy{}.Unmarshal(data)
		checkError(t, err)
		i := int(cut) % (len(data) + 1)
		if j := bytes.IndexByte(data[i:], '\n'); i > 0 && j >= 0 {
			i += j + 1 // the end of the line cut falls in
		} else if i > 0 {
			i = len(data)
		}
		checkHalves(t, data[:i], data[i:], whole, err)
		if err == nil {
			checkLines(t, data, whole)
			checkRoundTrip(t, whole)
		}
	})
}

// checkError fails unless err is nil or an *Error with a line.
func checkError(t *testing.T, err error) {
	t.Helper()
	var ce *Error
	if err != nil && (!errors.As(err, &ce) || ce.Line < 1) {
		t.Fatalf("error %v is not an *Error with a line", err)
	}
}

// checkHalves checks that a and b, which split a document at a line
// boundary, parse as the whole did: a fails as the whole does; if a parses
// and b fails, the whole fails at b's error (its line shifted), or earlier
// at a key of b set in a too; if both parse, the whole is their union, or
// fails because a key is in both.
func checkHalves(t *testing.T, a, b []byte, whole map[string]any, err error) {
	t.Helper()
	ma, errA := Legacy{}.Unmarshal(a)
	if errA != nil {
		if err == nil || err.Error() != errA.Error() {
			t.Fatalf("first half fails with %v, whole with %v", errA, err)
		}
		return
	}
	shift := bytes.Count(a, []byte("\n"))
	mb, errB := Legacy{}.Unmarshal(b)
	var eb *Error
	if errors.As(errB, &eb) {
		shifted := *eb
		shifted.Line += shift
		if shifted.First > 0 {
			shifted.First += shift
		}
		if err == nil || err.Error() != shifted.Error() && !setTwiceFrom(err, ma) {
			t.Fatalf("second half fails with %v (shifted: %v), whole with %v", errB, &shifted, err)
		}
		return
	}
	merged := maps.Clone(ma)
	maps.Copy(merged, mb)
	switch {
	case len(merged) < len(ma)+len(mb):
		if !setTwiceFrom(err, ma) {
			t.Fatalf("halves %v and %v share a key; whole gives %v", ma, mb, err)
		}
	case err != nil || !maps.Equal(merged, whole):
		t.Fatalf("halves %v + %v; whole %v, %v", ma, mb, whole, err)
	}
}

// setTwiceFrom reports whether err is a key set twice, first in the first
// half (whose keys are ma).
func setTwiceFrom(err error, ma map[string]any) bool {
	var ce *Error
	if !errors.As(err, &ce) || ce.First == 0 {
		return false
	}
	_, ok := ma[ce.Key]
	return ok
}

// checkLines checks that Lines names a line for every key Unmarshal read.
func checkLines(t *testing.T, data []byte, m map[string]any) {
	t.Helper()
	lines := Lines(data)
	n := bytes.Count(data, []byte("\n")) + 1
	for k := range m {
		if l, ok := lines[k]; !ok || l < 1 || l > n {
			t.Fatalf("Lines gives key %q line %d (ok=%v) of %d", k, l, ok, n)
		}
	}
}

// checkRoundTrip checks that Marshal writes m so that it reads back equal.
func checkRoundTrip(t *testing.T, m map[string]any) {
	t.Helper()
	out, err := Legacy{}.Marshal(m)
	if err != nil {
		t.Fatalf("Marshal(%q): %v", m, err)
	}
	back, err := Legacy{}.Unmarshal(out)
	if err != nil || !maps.Equal(back, m) {
		t.Fatalf("round trip of %q gives %q, %v\n%s", m, back, err, out)
	}
}
