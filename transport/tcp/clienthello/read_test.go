package clienthello

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestReadRealHellos(t *testing.T) {
	tests := []struct {
		name      string
		capture   func(testing.TB) []byte
		tls13     bool
		dhe       bool
		needsDHE  bool
		suites    []uint16 // exact list, when known
		versions  []uint16 // exact list, when known
		someSuite uint16
	}{
		{name: "go-tls13", capture: captureGoTLS13, tls13: true, someSuite: tls.TLS_AES_128_GCM_SHA256},
		{
			name: "go-tls12-ecdhe", capture: captureGoTLS12,
			suites: []uint16{
				tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
				tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
				tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
			},
			versions: []uint16{VersionTLS12},
		},
		{
			name: "zcrypto-dhe-only", capture: captureDHEOnly, dhe: true, needsDHE: true,
			suites: []uint16{0x009f}, versions: []uint16{VersionTLS12},
		},
		{
			name: "zcrypto-dhe-and-ecdhe", dhe: true,
			capture: func(t testing.TB) []byte {
				return captureZcrypto(t, []uint16{0x009f, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256})
			},
			suites: []uint16{0x009f, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.capture(t)
			h, raw, err := checkRead(t, data, len(data), 0)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if !bytes.Equal(raw, data) {
				t.Errorf("Read returned %d bytes, client sent %d", len(raw), len(data))
			}
			if h.ServerName != "dtcall.test" {
				t.Errorf("ServerName = %q", h.ServerName)
			}
			if got := h.OffersTLS13(); got != tt.tls13 {
				t.Errorf("OffersTLS13 = %v, versions %x", got, h.SupportedVersions)
			}
			if got := h.OffersDHE(); got != tt.dhe {
				t.Errorf("OffersDHE = %v, suites %x", got, h.CipherSuites)
			}
			if got := h.NeedsDHE(goSuites()); got != tt.needsDHE {
				t.Errorf("NeedsDHE = %v, suites %x", got, h.CipherSuites)
			}
			if tt.suites != nil && !slices.Equal(withoutSCSV(h.CipherSuites), tt.suites) {
				t.Errorf("CipherSuites = %x, want %x", h.CipherSuites, tt.suites)
			}
			if tt.versions != nil && !slices.Equal(h.SupportedVersions, tt.versions) {
				t.Errorf("SupportedVersions = %x, want %x", h.SupportedVersions, tt.versions)
			}
			if tt.someSuite != 0 && !slices.Contains(h.CipherSuites, tt.someSuite) {
				t.Errorf("CipherSuites = %x, want %x among them", h.CipherSuites, tt.someSuite)
			}
		})
	}
}

// withoutSCSV drops signalling values (renegotiation SCSV 0x00ff, fallback
// SCSV 0x5600) that some clients add to the list.
func withoutSCSV(ids []uint16) []uint16 {
	return slices.DeleteFunc(slices.Clone(ids), func(id uint16) bool { return id == 0x00ff || id == 0x5600 })
}

func TestReadSplitAcrossRecords(t *testing.T) {
	data := captureDHEOnly(t)
	want, _, err := checkRead(t, data, len(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	bodyLen := len(data) - recordHeaderLen
	// Cuts inside the 4-byte handshake header, in the middle, at the end.
	for _, cut := range []int{1, 3, 4, bodyLen / 2, bodyLen - 1} {
		split := splitRecord(data, cut)
		h, raw, err := checkRead(t, split, recordHeaderLen+cut/2, 0)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if !bytes.Equal(raw, split) || !equalHello(h, want) {
			t.Errorf("cut %d: got %+v, %d bytes; want %+v, %d bytes", cut, h, len(raw), want, len(split))
		}
	}
}

func TestReadStopsAfterHello(t *testing.T) {
	data := captureGoTLS12(t)
	trailer := []byte("\x17\x03\x03\x00\x05after")
	stream := append(slices.Clone(data), trailer...)
	conn := newPieceConn(stream, len(data)+2)
	_, raw, err := Read(conn, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, data) {
		t.Fatalf("Read returned %d bytes, want the %d of the hello", len(raw), len(data))
	}
	rest, _ := io.ReadAll(conn)
	if !bytes.Equal(rest, trailer) {
		t.Fatalf("bytes left on the conn = %q, want %q", rest, trailer)
	}
}

func TestReadRefuses(t *testing.T) {
	hello := captureDHEOnly(t)
	// A second handshake record of another type, and an empty record.
	withAlert := append(splitRecord(hello, 10)[:recordHeaderLen+10], 21, 3, 3, 0, 2, 2, 40)
	empty := append([]byte{22, 3, 1, 0, 0}, hello...)
	serverHello := slices.Clone(hello)
	serverHello[recordHeaderLen] = 2
	oddSuites := slices.Clone(hello)
	// legacy_version(2) random(32) session_id length byte: suites length follows.
	off := recordHeaderLen + handshakeHeaderLen + 2 + 32
	off += 1 + int(oddSuites[off])
	oddSuites[off+1]++
	hugeRecord := []byte{22, 3, 1, 0x50, 0x00}
	hugeMessage := []byte{22, 3, 1, 0, 4, 1, 0x10, 0, 0}

	tests := []struct {
		name  string
		data  []byte
		limit int
		want  error
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0, ErrNotTLS},
		{"sslv2-hello", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, 0, ErrNotTLS},
		{"alert-first", []byte{21, 3, 3, 0, 2, 2, 40}, 0, ErrNotTLS},
		{"bad-record-version", []byte{22, 2, 0, 0, 4, 1, 0, 0, 0}, 0, ErrNotTLS},
		{"server-hello", serverHello, 0, ErrNotClientHello},
		{"alert-inside-hello", withAlert, 0, ErrMalformed},
		{"empty-record", empty, 0, ErrMalformed},
		{"odd-suites-length", oddSuites, 0, ErrMalformed},
		{"record-over-tls-max", hugeRecord, 0, ErrTooLarge},
		{"message-over-limit", hugeMessage, 0, ErrTooLarge},
		{"hello-over-small-limit", hello, 100, ErrTooLarge},
		{"empty-input", nil, 0, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := checkRead(t, tt.data, 3, tt.limit)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Read error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReadTruncated(t *testing.T) {
	data := splitRecord(captureGoTLS13(t), 200)
	for n := 1; n < len(data); n++ {
		_, raw, err := checkRead(t, data[:n], n/2, 0)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("first %d bytes: error = %v, want unexpected EOF", n, err)
		}
		if len(raw) != n {
			t.Fatalf("first %d bytes: returned %d", n, len(raw))
		}
	}
}

func TestReadDeadline(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = client.Write([]byte{22, 3, 1}) // then stall
	}()
	if err := server.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, raw, err := Read(server, 0)
	<-done
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read error = %v, want deadline exceeded", err)
	}
	if len(raw) != 3 {
		t.Fatalf("returned %d bytes, want 3", len(raw))
	}
}

func TestIsDHE(t *testing.T) {
	for _, id := range []uint16{0x009f, 0x009e, 0x0033, 0xccaa, 0x00a3} {
		if !IsDHE(id) {
			t.Errorf("IsDHE(%#04x) = false", id)
		}
	}
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if IsDHE(s.ID) {
			t.Errorf("IsDHE(%s) = true: crypto/tls has no DHE", s.Name)
		}
	}
	for id, name := range dheSuites {
		if len(name) < 8 || (name[:8] != "TLS_DHE_") {
			t.Errorf("%#04x: %s is not a DHE suite name", id, name)
		}
	}
}

func TestNeedsDHE(t *testing.T) {
	ecdhe := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	tests := []struct {
		name string
		h    Hello
		want bool
	}{
		{"dhe-only", Hello{CipherSuites: []uint16{0x009f}, SupportedVersions: []uint16{VersionTLS12}}, true},
		{"dhe-and-ecdhe", Hello{CipherSuites: []uint16{0x009f, ecdhe[0]}, SupportedVersions: []uint16{VersionTLS12}}, false},
		{"dhe-and-tls13", Hello{CipherSuites: []uint16{0x009f, 0x1301}, SupportedVersions: []uint16{VersionTLS13, VersionTLS12}}, false},
		{"ecdhe-only", Hello{CipherSuites: ecdhe, SupportedVersions: []uint16{VersionTLS12}}, false},
		{"nothing-usable", Hello{CipherSuites: []uint16{0x0005}, SupportedVersions: []uint16{VersionTLS12}}, false},
	}
	for _, tt := range tests {
		if got := tt.h.NeedsDHE(ecdhe); got != tt.want {
			t.Errorf("%s: NeedsDHE = %v, want %v", tt.name, got, tt.want)
		}
	}
}
