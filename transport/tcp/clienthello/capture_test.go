package clienthello

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	ztls "github.com/zmap/zcrypto/tls"
)

// Test helpers: capture real ClientHellos and feed bytes through fake conns.

// goSuites are the TLS 1.2 suites a default crypto/tls server accepts.
func goSuites() []uint16 {
	var ids []uint16
	for _, s := range tls.CipherSuites() {
		ids = append(ids, s.ID)
	}
	return ids
}

// captureFirstWrite runs handshake on the client end of a net.Pipe and
// returns the bytes of its first Write (the ClientHello flight: every TLS
// client here writes it in one call). It waits for the client to give up.
func captureFirstWrite(t testing.TB, handshake func(net.Conn) error) []byte {
	t.Helper()
	client, server := net.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = handshake(client) // fails once server closes: expected
		client.Close()
	}()
	if err := server.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	n, err := server.Read(buf)
	server.Close()
	wg.Wait()
	if err != nil {
		t.Fatalf("capture ClientHello: %v", err)
	}
	return buf[:n]
}

// captureGo returns the ClientHello a crypto/tls client sends with cfg.
func captureGo(t testing.TB, cfg *tls.Config) []byte {
	return captureFirstWrite(t, func(c net.Conn) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return tls.Client(c, cfg).HandshakeContext(ctx)
	})
}

// captureZcrypto returns the ClientHello of a zcrypto TLS 1.2 client forced
// to offer exactly suites, like the 2017 Android client.
func captureZcrypto(t testing.TB, suites []uint16) []byte {
	return captureFirstWrite(t, func(c net.Conn) error {
		return ztls.Client(c, &ztls.Config{
			ServerName:         "dtcall.test",
			InsecureSkipVerify: true,
			CipherSuites:       suites,
			ForceSuites:        true,
			MinVersion:         ztls.VersionTLS12,
			MaxVersion:         ztls.VersionTLS12,
		}).Handshake()
	})
}

func captureGoTLS13(t testing.TB) []byte {
	return captureGo(t, &tls.Config{ServerName: "dtcall.test"})
}

func captureGoTLS12(t testing.TB) []byte {
	return captureGo(t, &tls.Config{
		ServerName: "dtcall.test",
		MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	})
}

func captureDHEOnly(t testing.TB) []byte {
	return captureZcrypto(t, []uint16{0x009f})
}

// splitRecord re-frames the single handshake record at the start of data as
// two records, the first carrying cut body bytes. It returns nil if data does
// not start with a complete handshake record longer than cut.
func splitRecord(data []byte, cut int) []byte {
	if len(data) < recordHeaderLen || data[0] != recordTypeHandshake {
		return nil
	}
	n := int(data[3])<<8 | int(data[4])
	if cut <= 0 || cut >= n || len(data) < recordHeaderLen+n {
		return nil
	}
	body := data[recordHeaderLen : recordHeaderLen+n]
	out := make([]byte, 0, len(data)+recordHeaderLen)
	out = append(out, data[0], data[1], data[2], byte(cut>>8), byte(cut))
	out = append(out, body[:cut]...)
	out = append(out, data[0], data[1], data[2], byte((n-cut)>>8), byte(n-cut))
	out = append(out, body[cut:]...)
	return append(out, data[recordHeaderLen+n:]...)
}

// pieceConn is a net.Conn over fixed bytes whose Reads stop at a cut point, so
// the bytes arrive in two pieces. Only Read is implemented; it returns io.EOF
// at the end. It counts what it handed out.
type pieceConn struct {
	net.Conn // nil: other methods panic, Read must not need them
	data     []byte
	cut      int
	pos      int
}

func newPieceConn(data []byte, cut int) *pieceConn {
	return &pieceConn{data: data, cut: cut}
}

func (c *pieceConn) Read(p []byte) (int, error) {
	end := len(c.data)
	if c.pos < c.cut && c.cut < end {
		end = c.cut
	}
	if c.pos >= len(c.data) {
		return 0, io.EOF
	}
	n := copy(p, c.data[c.pos:end])
	c.pos += n
	return n, nil
}

// isReadError reports whether err is one Read is documented to return for a
// byte stream that ends.
func isReadError(err error) bool {
	for _, want := range []error{ErrNotTLS, ErrNotClientHello, ErrTooLarge, ErrMalformed, io.EOF, io.ErrUnexpectedEOF} {
		if errors.Is(err, want) {
			return true
		}
	}
	return false
}

// checkRead runs Read over data arriving in two pieces and checks what holds
// for any input: no bytes past the ones returned are read, the returned bytes
// are a prefix of the input within the limit, errors are the documented ones,
// and a hello read again through a ReplayConn parses the same.
func checkRead(t *testing.T, data []byte, cut, limit int) (*Hello, []byte, error) {
	t.Helper()
	conn := newPieceConn(data, cut)
	h, raw, err := Read(conn, limit)
	if limit <= 0 {
		limit = DefaultLimit
	}
	if conn.pos != len(raw) {
		t.Fatalf("Read consumed %d bytes but returned %d", conn.pos, len(raw))
	}
	if len(raw) > limit || !bytes.Equal(raw, data[:len(raw)]) {
		t.Fatalf("returned bytes are not a prefix of the input within the limit (%d of %d)", len(raw), limit)
	}
	if err != nil {
		if h != nil || !isReadError(err) {
			t.Fatalf("Read = %v, %v: want nil hello and a documented error", h, err)
		}
		return nil, raw, err
	}
	if len(h.CipherSuites) == 0 || len(h.SupportedVersions) == 0 {
		t.Fatalf("hello without suites or versions: %+v", h)
	}
	again, raw2, err := Read(NewReplayConn(newPieceConn(nil, 0), raw), limit)
	if err != nil || !bytes.Equal(raw, raw2) || !equalHello(h, again) {
		t.Fatalf("replayed hello differs: %+v, %v", again, err)
	}
	return h, raw, nil
}

func equalHello(a, b *Hello) bool {
	return a.LegacyVersion == b.LegacyVersion && a.ServerName == b.ServerName &&
		slices.Equal(a.CipherSuites, b.CipherSuites) && slices.Equal(a.SupportedVersions, b.SupportedVersions)
}
