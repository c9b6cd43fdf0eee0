package accounts

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"testing"
	"testing/iotest"
)

// The seed corpora are in testdata/fuzz/<FuzzName>/: the sample hashes,
// a cheap hash, a sample users file and some broken inputs.

func FuzzParseMCF(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseMCF(s)
		if err != nil {
			return
		}
		if got := h.String(); got != s {
			t.Fatalf("String() = %q, want the input %q", got, s)
		}
		h2, err := ParseMCF(h.String())
		if err != nil {
			t.Fatalf("ParseMCF(String()): %v", err)
		}
		if h2.Params != h.Params || !bytes.Equal(h2.Salt, h.Salt) || !bytes.Equal(h2.Key, h.Key) {
			t.Fatalf("round trip: %+v != %+v", h2, h)
		}
		if h.LogN <= 8 && h.R*h.P <= 16 { // at most ~1 ms; skip expensive ones
			h.Verify("pw")
		}
	})
}

func FuzzParseUsers(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantErr := ParseUsers(bytes.NewReader(data))
		if wantErr != nil && want != nil {
			t.Fatalf("entries %v with error %v", want, wantErr)
		}
		for _, e := range want {
			if !ValidName(e.Name) || e.Line < 1 {
				t.Fatalf("entry %q on line %d", e.Name, e.Line)
			}
		}
		half := len(data) / 2
		readers := map[string]io.Reader{
			"two halves": io.MultiReader(bytes.NewReader(data[:half]), bytes.NewReader(data[half:])),
			"one byte":   iotest.OneByteReader(bytes.NewReader(data)),
			"data+EOF":   iotest.DataErrReader(bytes.NewReader(data)),
		}
		for name, r := range readers {
			got, err := ParseUsers(r)
			if !sameError(err, wantErr) || !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: got %v, %v; want %v, %v", name, got, err, want, wantErr)
			}
		}
		checkFormat(t, want)
		checkTwoFiles(t, data, want, wantErr)
	})
}

// checkFormat checks that entries written back one per line, as an
// operator's tool would, parse to the same entries: parse(format(x)) == x.
func checkFormat(t *testing.T, want []Entry) {
	t.Helper()
	var b bytes.Buffer
	for i := range want {
		fmt.Fprintf(&b, "%s %s\n", want[i].Name, want[i].Hash)
	}
	got, err := ParseUsers(&b)
	if err != nil || len(got) != len(want) {
		t.Fatalf("%d entries written back read as %d, %v", len(want), len(got), err)
	}
	for i := range got {
		w := want[i]
		w.Line = i + 1
		if !reflect.DeepEqual(got[i], w) {
			t.Fatalf("entry %d written back reads as %+v, want %+v", i, got[i], w)
		}
	}
}

// checkTwoFiles cuts data at the line end after its middle into two files
// and checks them against the whole: the state after the two pieces is the
// state after one. The first file fails as the whole does; if the second
// fails, so does the whole; if both parse, the whole parses unless a name
// is in both, and its entries are theirs, the second's lines shifted.
func checkTwoFiles(t *testing.T, data []byte, whole []Entry, wholeErr error) {
	t.Helper()
	i := bytes.IndexByte(data[len(data)/2:], '\n')
	if i < 0 {
		return
	}
	a, b := data[:len(data)/2+i+1], data[len(data)/2+i+1:]
	if bytes.HasPrefix(b, []byte(bom)) {
		return // a byte order mark counts only at the start of a file
	}
	ea, errA := ParseUsers(bytes.NewReader(a))
	eb, errB := ParseUsers(bytes.NewReader(b))
	switch {
	case errA != nil:
		if !sameError(errA, wholeErr) {
			t.Fatalf("first part fails with %v, the whole with %v", errA, wholeErr)
		}
	case errB != nil:
		if wholeErr == nil {
			t.Fatalf("second part fails with %v, the whole parses", errB)
		}
	case sharesName(ea, eb) != (wholeErr != nil):
		t.Fatalf("parts parse (a name in both: %v), the whole gives %v", sharesName(ea, eb), wholeErr)
	case wholeErr == nil:
		shift := bytes.Count(a, []byte("\n"))
		for j := range eb {
			eb[j].Line += shift
		}
		if joined := append(ea, eb...); !reflect.DeepEqual(joined, whole) {
			t.Fatalf("parts give %v, the whole %v", joined, whole)
		}
	}
}

func sharesName(a, b []Entry) bool {
	names := make(map[string]bool, len(a))
	for _, e := range a {
		names[e.Name] = true
	}
	for _, e := range b {
		if names[e.Name] {
			return true
		}
	}
	return false
}

func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Error() == b.Error()
}
