package clienthello

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzRead from freshly captured ClientHellos")

// FuzzRead feeds arbitrary bytes to Read through a conn that delivers them in
// two pieces (split at cut). When the input starts with one whole handshake
// record, the same bytes re-framed as two records (split at cut) must parse
// to the same hello.
func FuzzRead(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), uint16(3))
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0}, uint16(5))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		h, _, err := checkRead(t, data, int(cut), 0)
		split := splitRecord(data, int(cut))
		if err != nil || split == nil {
			return
		}
		h2, _, err := checkRead(t, split, int(cut)/2, DefaultLimit+recordHeaderLen)
		if err != nil {
			t.Fatalf("hello parses as one record but not as two: %v", err)
		}
		if !equalHello(h, h2) {
			t.Fatalf("hello differs when split in two records: %+v vs %+v", h, h2)
		}
	})
}

// TestWriteSeedCorpus rewrites the committed seed corpus of FuzzRead from
// real ClientHellos when run with -update-corpus:
//
//	go test ./transport/tcp/clienthello -run TestWriteSeedCorpus -update-corpus
func TestWriteSeedCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -update-corpus to rewrite testdata/fuzz/FuzzRead")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzRead")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seeds := map[string][]byte{
		"go-tls13":              captureGoTLS13(t),
		"go-tls12-ecdhe":        captureGoTLS12(t),
		"zcrypto-dhe-only":      captureDHEOnly(t),
		"zcrypto-dhe-and-ecdhe": captureZcrypto(t, []uint16{0x009f, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}),
	}
	for name, data := range seeds {
		writeSeed(t, filepath.Join(dir, name), data, uint16(len(data)/2))
		writeSeed(t, filepath.Join(dir, name+"-two-records"), splitRecord(data, 3), 7)
	}
}

// writeSeed writes one entry in the "go test fuzz v1" corpus file format.
func writeSeed(t *testing.T, path string, data []byte, cut uint16) {
	t.Helper()
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint16(%d)\n", data, cut)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
