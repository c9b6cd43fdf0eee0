package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"io"
	"strings"
	"testing"

	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/internal/testserver"
)

// spkiPins are the public-key pins of a certificate: spki:HEX and
// sha256/BASE64.
func spkiPins(t *testing.T, der []byte) (hexPin, base64Pin string) {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "spki:" + hex.EncodeToString(sum[:]), "sha256/" + base64.StdEncoding.EncodeToString(sum[:])
}

// --pin and --ca fill the client's options; together, or --server-name
// with a pin, they are a usage error.
func TestCertFlags(t *testing.T) {
	h := strings.Repeat("ab", 32)
	b64 := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, tt := range []struct {
		flags []string
		want  client.Options // only the certificate fields
		err   string
	}{
		{[]string{"--pin", "cert.pem"}, client.Options{PinFile: "cert.pem"}, ""},
		{[]string{"--pin", "sha256:" + h}, client.Options{PinSHA256: "sha256:" + h}, ""},
		{[]string{"--pin", "spki:" + h}, client.Options{PinSHA256: "spki:" + h}, ""},
		{[]string{"--pin", "sha256/" + b64}, client.Options{PinSHA256: "sha256/" + b64}, ""},
		{[]string{"--pin", "./sha256/cert.pem"}, client.Options{PinFile: "./sha256/cert.pem"}, ""},
		{[]string{"--ca", "ca.pem"}, client.Options{CAFile: "ca.pem"}, ""},
		{[]string{"--ca", "system"}, client.Options{SystemRoots: true}, ""},
		{[]string{"--ca", "./system"}, client.Options{CAFile: "./system"}, ""},
		{[]string{"--ca", "ca.pem", "--server-name", "voip.example"}, client.Options{CAFile: "ca.pem", ServerName: "voip.example"}, ""},
		{[]string{"--pin", "cert.pem", "--ca", "ca.pem"}, client.Options{}, "--pin and --ca exclude each other"},
		{[]string{"--pin", "spki:" + h, "--ca", "system"}, client.Options{}, "--pin and --ca exclude each other"},
		{[]string{"--pin", "cert.pem", "--server-name", "voip.example"}, client.Options{}, "--server-name goes with --ca"},
		{[]string{"--server-name", "voip.example"}, client.Options{}, "--pin or --ca is required"},
	} {
		c := &cli{env: env{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}}
		err := c.parse(append([]string{"--server", "127.0.0.1", "--user", "alice", "lookup", "bob"}, tt.flags...))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: %v, want %q", tt.flags, err, tt.err)
			}
			continue
		}
		got := client.Options{
			PinFile: c.opts.PinFile, PinSHA256: c.opts.PinSHA256,
			CAFile: c.opts.CAFile, SystemRoots: c.opts.SystemRoots, ServerName: c.opts.ServerName,
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %+v, %v; want %+v", tt.flags, got, err, tt.want)
		}
	}
}

func TestCertFlagsUsage(t *testing.T) {
	s := startServer(t)
	both := s.argsChecked("quic", "alice", []string{"--pin", s.certFile, "--ca", "system"}, "lookup", "bob")
	s.start(t, "pw-alice", both...).wait(t, exitUsage, "--pin and --ca exclude each other")
	name := s.argsChecked("quic", "alice", []string{"--pin", s.certFile, "--server-name", "localhost"}, "lookup", "bob")
	s.start(t, "pw-alice", name...).wait(t, exitUsage, "--server-name goes with --ca")
	s.start(t, "pw-alice", "--help").wait(t, exitOK, "--pin spki:HEX", "--ca system")
}

// A public-key pin, in both forms, over every transport; a wrong one is
// refused.
func TestPinPublicKey(t *testing.T) {
	s := startServer(t)
	hexPin, base64Pin := spkiPins(t, s.der)
	for _, tt := range []struct{ transport, pin string }{
		{"quic", hexPin}, {"tcp", hexPin}, {"datagram", base64Pin}, {"tcp", base64Pin},
	} {
		s.start(t, "pw-alice", s.argsChecked(tt.transport, "alice", []string{"--pin", tt.pin}, "lookup", "bob")...).
			wait(t, exitOK, "bob exists")
	}
	wrong := "spki:" + strings.Repeat("00", 32)
	s.start(t, "pw-alice", s.argsChecked("quic", "alice", []string{"--pin", wrong}, "lookup", "bob")...).
		wait(t, exitError, "does not match the pinned public key "+wrong, hexPin, base64Pin)
}

// --ca verifies the server's certificate and its name.
func TestCA(t *testing.T) {
	ca := testcert.WriteCA(t)
	s := startServerWith(t, testserver.Config{Cert: ca.Issue(t, "localhost", "127.0.0.1")})
	for _, tr := range []string{"quic", "tcp"} {
		s.start(t, "pw-alice", s.argsChecked(tr, "alice", []string{"--ca", ca.CertFile}, "lookup", "bob")...).
			wait(t, exitOK, "bob exists")
		named := []string{"--ca", ca.CertFile, "--server-name", "localhost"}
		s.start(t, "pw-alice", s.argsChecked(tr, "alice", named, "lookup", "bob")...).wait(t, exitOK, "bob exists")
		wrong := []string{"--ca", ca.CertFile, "--server-name", "dtcall.example"}
		s.start(t, "pw-alice", s.argsChecked(tr, "alice", wrong, "lookup", "bob")...).
			wait(t, exitError, "not dtcall.example")
		other := []string{"--ca", testcert.WriteCA(t).CertFile}
		s.start(t, "pw-alice", s.argsChecked(tr, "alice", other, "lookup", "bob")...).
			wait(t, exitError, "certificate signed by unknown authority")
	}
}
