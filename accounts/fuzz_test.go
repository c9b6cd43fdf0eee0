package accounts

import (
	"bytes"
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
	})
}

func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Error() == b.Error()
}
