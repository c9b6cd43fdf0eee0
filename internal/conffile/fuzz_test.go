package conffile

import (
	"bytes"
	"errors"
	"maps"
	"testing"
)

// FuzzLegacy checks that Unmarshal never panics, that an input cut in two
// and joined again parses the same, that two halves cut at a line boundary
// parse like the whole, that Lines agrees with Unmarshal, and that Marshal
// round-trips every map Unmarshal produces.
func FuzzLegacy(f *testing.F) {
	f.Add([]byte("command = 1991  # port\r\nmedia = 2014\npublic = \"a#b\"\n"), uint16(15))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		whole, err := Legacy{}.Unmarshal(data)
		checkError(t, err)
		i := int(cut) % (len(data) + 1)
		joined := append(bytes.Clone(data[:i]), data[i:]...)
		again, err2 := Legacy{}.Unmarshal(joined)
		if !sameResult(whole, err, again, err2) {
			t.Fatalf("joined halves parse differently: %v/%v vs %v/%v", whole, err, again, err2)
		}
		if i == 0 || data[i-1] == '\n' {
			checkHalves(t, data[:i], data[i:], whole, err)
		}
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

// sameResult reports whether two Unmarshal results are equal.
func sameResult(m1 map[string]any, err1 error, m2 map[string]any, err2 error) bool {
	if err1 != nil || err2 != nil {
		return err1 != nil && err2 != nil && err1.Error() == err2.Error()
	}
	return maps.Equal(m1, m2)
}

// checkHalves checks that a and b, which split a document at a line
// boundary, parse consistently with the whole document.
func checkHalves(t *testing.T, a, b []byte, whole map[string]any, err error) {
	t.Helper()
	ma, errA := Legacy{}.Unmarshal(a)
	if errA != nil {
		if err == nil || err.Error() != errA.Error() {
			t.Fatalf("first half fails with %v, whole with %v", errA, err)
		}
		return
	}
	mb, errB := Legacy{}.Unmarshal(b)
	if err != nil {
		return
	}
	if errB != nil {
		t.Fatalf("whole parses but second half fails: %v", errB)
	}
	merged := maps.Clone(ma)
	maps.Copy(merged, mb)
	if len(merged) != len(ma)+len(mb) || !maps.Equal(merged, whole) {
		t.Fatalf("halves %v + %v differ from whole %v", ma, mb, whole)
	}
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
