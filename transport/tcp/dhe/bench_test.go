//go:build cgo && !nodhe

package dhe

import (
	"bytes"
	"testing"
)

// BenchmarkHandshakeDHE measures full DHE handshakes over loopback, client
// (pure-Go zcrypto) and server (OpenSSL) together, with the automatic
// 2048-bit group.
func BenchmarkHandshakeDHE(b *testing.B) {
	srv, _ := newServer(b, Config{})
	ts := startServer(b, srv, echo)
	b.ResetTimer()
	for b.Loop() {
		c, err := dialErr(ts.addr(), nil)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkRecordRoundTrip measures one 32-byte record (an AMR frame) echoed
// by the server's reader and writer goroutines.
func BenchmarkRecordRoundTrip(b *testing.B) {
	srv, _ := newServer(b, Config{})
	ts := startServer(b, srv, echo)
	c := dial(b, ts.addr())
	msg := bytes.Repeat([]byte("a"), 32)
	buf := make([]byte, 64)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if n, err := c.Read(buf); err != nil || n != len(msg) {
			b.Fatalf("echo: %d, %v", n, err)
		}
	}
}
