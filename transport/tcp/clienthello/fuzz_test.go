package clienthello

import (
	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzRead from freshly captured ClientHellos")

// FuzzRead feeds arbitrary bytes to Read through a conn that delivers them
// in two pieces (split at cut) and through one that delivers them whole: the
// reader's state after two pieces is its state after one (the same hello,
// bytes consumed and error). A hello it returns, written back as a
// ClientHello of its own, reads back the same: parse(format(h)) == h. When
// the input starts with one whole handshake record, the same bytes
// re-framed as two records (split at cut) must parse to the same hello.
func FuzzRead(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), uint16(3))
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0}, uint16(5))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		h, raw, err := checkRead(t, data, int(cut), 0)
		h1, raw1, err1 := checkRead(t, data, len(data), 0)
		if !sameRead(h, raw, err, h1, raw1, err1) {
			t.Fatalf("in two pieces: %+v, %d bytes, %v; whole: %+v, %d bytes, %v", h, len(raw), err, h1, len(raw1), err1)
		}
		if err != nil {
			return
		}
		out := formatHello(h) // up to a few bytes longer than raw: room for them
		if h2, _, err := checkRead(t, out, len(out)/2, DefaultLimit+64); err != nil || !equalHello(h, h2) {
			t.Fatalf("hello %+v written back reads as %+v, %v", h, h2, err)
		}
		split := splitRecord(data, int(cut))
		if split == nil {
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

func sameRead(h *Hello, raw []byte, err error, h1 *Hello, raw1 []byte, err1 error) bool {
	if err != nil || err1 != nil {
		return err != nil && err1 != nil && err.Error() == err1.Error() && bytes.Equal(raw, raw1)
	}
	return equalHello(h, h1) && bytes.Equal(raw, raw1)
}

// formatHello writes h as a minimal ClientHello in records of at most the
// TLS maximum: its version and suites, a zero random, no session id, null
// compression, and the server_name and supported_versions extensions.
func formatHello(h *Hello) []byte {
	var b cryptobyte.Builder
	b.AddUint16(h.LegacyVersion)
	b.AddBytes(make([]byte, 32))
	b.AddUint8(0) // legacy_session_id
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, id := range h.CipherSuites {
			b.AddUint16(id)
		}
	})
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(0) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		if h.ServerName != "" {
			b.AddUint16(extServerName)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					b.AddUint8(0) // host_name
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(h.ServerName)) })
				})
			})
		}
		b.AddUint16(extSupportedVersions)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {
				for _, v := range h.SupportedVersions {
					b.AddUint16(v)
				}
			})
		})
	})
	body := b.BytesOrPanic()
	msg := append([]byte{handshakeClientHello, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	var out []byte
	for len(msg) > 0 {
		n := min(len(msg), maxPlaintextRecordLen)
		out = append(out, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
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
