package client_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/internal/testserver"
)

// prints are a certificate's fingerprints in the three forms dtoperator
// logs, computed here from the parsed public key (not from the
// certificate's raw SubjectPublicKeyInfo bytes the client hashes).
type prints struct{ cert, spki, spkiBase64 string }

func fingerprints(t *testing.T, der []byte) prints {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(c.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	cs, ks := sha256.Sum256(der), sha256.Sum256(spki)
	return prints{
		cert:       "sha256:" + hex.EncodeToString(cs[:]),
		spki:       "spki:" + hex.EncodeToString(ks[:]),
		spkiBase64: "sha256/" + base64.StdEncoding.EncodeToString(ks[:]),
	}
}

// publicKeyFile writes the public key of a certificate as a PEM PUBLIC
// KEY block, as openssl x509 -pubkey -noout does.
func publicKeyFile(t *testing.T, der []byte) string {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: c.RawSubjectPublicKeyInfo}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkedBy are s's options for k with the certificate check set by set
// (the pin file of s.options is cleared first).
func (s *server) checkedBy(k kind, set func(*client.Options)) client.Options {
	o := s.options(k.tr)
	o.TLS12DHEOnly = k.dhe
	o.PinFile = ""
	set(&o)
	return o
}

// users gives each kind's subtest a user of its own.
var users = map[string]string{"tcp": "alice", "tcp-android2017": "bob", "quic": "carol", "quic-datagram": "dave"}

// onlineWith logs in and registers media with o: over TCP that is a second
// TLS connection, checked the same way.
func (s *server) onlineWith(t *testing.T, user string, o client.Options) {
	t.Helper()
	c := s.dial(t, o)
	ctx := context.Background()
	if err := c.Login(ctx, user, "pw-"+user); err != nil {
		t.Fatalf("login: %v", err)
	}
	if err := c.RegisterMedia(ctx); err != nil {
		t.Fatalf("register media: %v", err)
	}
	c.Close()
}

// refused dials with o and returns the error, failing if Dial succeeds.
func refused(t *testing.T, o client.Options) error {
	t.Helper()
	c, err := client.Dial(context.Background(), o)
	if err == nil {
		c.Close()
		t.Fatal("dialed, want a refusal")
	}
	return err
}

// pinRefused dials with o and checks the *PinError: its kind, the value it
// shows for the server, and the server's fingerprints.
func pinRefused(t *testing.T, o client.Options, kind client.PinKind, got string, server prints) {
	t.Helper()
	err := refused(t, o)
	pe, ok := errors.AsType[*client.PinError](err)
	if !ok {
		t.Fatalf("want a *PinError, got %v", err)
	}
	if pe.Kind != kind || pe.Got != got || pe.Cert != server.cert || pe.SPKI != server.spki || pe.SPKIBase64 != server.spkiBase64 {
		t.Fatalf("PinError %+v; want kind %v, got %s, server %+v", pe, kind, got, server)
	}
	for _, s := range []string{"does not match the pinned " + kind.String(), server.cert, server.spki, server.spkiBase64} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not say %q", err, s)
		}
	}
}

func TestPublicKeyPin(t *testing.T) {
	s := startServer(t, core.Config{})
	fp := fingerprints(t, s.der)
	h := strings.TrimPrefix(fp.spki, "spki:")
	pubFile, other := publicKeyFile(t, s.der), otherCert(t)
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			s.skipWithoutDHE(t, k)
			s.onlineWith(t, users[k.name], s.checkedBy(k, func(o *client.Options) { o.PinSHA256 = fp.spki }))
			for _, good := range []func(*client.Options){
				func(o *client.Options) { o.PinSHA256 = "spki:" + strings.ToUpper(h[:2]) + ":" + h[2:] },
				func(o *client.Options) { o.PinSHA256 = fp.spkiBase64 },
				func(o *client.Options) { o.PinSHA256 = "sha256//" + strings.TrimPrefix(fp.spkiBase64, "sha256/") },
				func(o *client.Options) { o.PinKeyFile = s.certFile },
				func(o *client.Options) { o.PinKeyFile = pubFile },
			} {
				s.dial(t, s.checkedBy(k, good)).Close()
			}

			wrongHex := "spki:" + strings.Repeat("ab", 32)
			pinRefused(t, s.checkedBy(k, func(o *client.Options) { o.PinSHA256 = wrongHex }), client.PublicKeyPin, fp.spki, fp)
			wrongB64 := "sha256/" + base64.StdEncoding.EncodeToString(make([]byte, 32))
			pinRefused(t, s.checkedBy(k, func(o *client.Options) { o.PinSHA256 = wrongB64 }), client.PublicKeyPin, fp.spkiBase64, fp)
			pinRefused(t, s.checkedBy(k, func(o *client.Options) { o.PinKeyFile = other }), client.PublicKeyPin, fp.spki, fp)
			// A certificate pin of the server's public key is a wrong pin.
			certOfKey := "sha256:" + h
			pinRefused(t, s.checkedBy(k, func(o *client.Options) { o.PinSHA256 = certOfKey }), client.CertificatePin, fp.cert, fp)
		})
	}
}

// A certificate renewed with the same key keeps its public-key pin and
// breaks its certificate pin.
func TestRenewedCertificate(t *testing.T) {
	old := testcert.Write(t)
	renewed := testcert.Renew(t, old)
	s := startServerWith(t, testserver.Config{Cert: renewed})
	was, now := fingerprints(t, old.DER), fingerprints(t, renewed.DER)
	if was.cert == now.cert || was.spki != now.spki {
		t.Fatalf("renewal: %+v, then %+v", was, now)
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			s.skipWithoutDHE(t, k)
			s.onlineWith(t, users[k.name], s.checkedBy(k, func(o *client.Options) { o.PinSHA256 = was.spki }))
			s.dial(t, s.checkedBy(k, func(o *client.Options) { o.PinSHA256 = was.spkiBase64 })).Close()
			s.dial(t, s.checkedBy(k, func(o *client.Options) { o.PinKeyFile = old.CertFile })).Close()

			pinRefused(t, s.checkedBy(k, func(o *client.Options) { o.PinSHA256 = was.cert }), client.CertificatePin, now.cert, now)
			pinRefused(t, s.checkedBy(k, func(o *client.Options) { o.PinFile = old.CertFile }), client.CertificatePin, now.cert, now)
		})
	}
}

// CA mode: the server's certificate must chain to the CA and cover the
// server's name.
func TestCAVerified(t *testing.T) {
	ca := testcert.WriteCA(t)
	s := startServerWith(t, testserver.Config{Cert: ca.Issue(t, "localhost", "127.0.0.1")})
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			s.skipWithoutDHE(t, k)
			// Server "127.0.0.1" is checked against the IP SAN.
			s.onlineWith(t, users[k.name], s.checkedBy(k, func(o *client.Options) { o.CAFile = ca.CertFile }))
			s.dial(t, s.checkedBy(k, func(o *client.Options) { o.CAFile, o.ServerName = ca.CertFile, "localhost" })).Close()

			err := refused(t, s.checkedBy(k, func(o *client.Options) { o.CAFile, o.ServerName = ca.CertFile, "dtcall.example" }))
			if _, ok := errors.AsType[x509.HostnameError](err); !ok {
				t.Errorf("wrong server name: want an x509.HostnameError, got %v", err)
			}
			err = refused(t, s.checkedBy(k, func(o *client.Options) { o.CAFile = testcert.WriteCA(t).CertFile }))
			if _, ok := errors.AsType[x509.UnknownAuthorityError](err); !ok {
				t.Errorf("another CA: want an x509.UnknownAuthorityError, got %v", err)
			}
			// The test CA is not among the system's roots.
			err = refused(t, s.checkedBy(k, func(o *client.Options) { o.SystemRoots = true }))
			if _, ok := errors.AsType[*client.PinError](err); ok {
				t.Errorf("system roots: %v", err)
			}
		})
	}
}

// CA mode refuses a certificate for another name, and one the CA did not
// sign.
func TestCARefuses(t *testing.T) {
	ca := testcert.WriteCA(t)
	onlyName := startServerWith(t, testserver.Config{Cert: ca.Issue(t, "localhost")})
	selfSigned := startServer(t, core.Config{})
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			onlyName.skipWithoutDHE(t, k)
			err := refused(t, onlyName.checkedBy(k, func(o *client.Options) { o.CAFile = ca.CertFile }))
			if _, ok := errors.AsType[x509.HostnameError](err); !ok {
				t.Errorf("certificate for localhost, server 127.0.0.1: want an x509.HostnameError, got %v", err)
			}
			err = refused(t, selfSigned.checkedBy(k, func(o *client.Options) { o.CAFile, o.ServerName = ca.CertFile, "localhost" }))
			if _, ok := errors.AsType[x509.UnknownAuthorityError](err); !ok {
				t.Errorf("self-signed certificate: want an x509.UnknownAuthorityError, got %v", err)
			}
		})
	}
}

// Exactly one way to check the server; bad pins and files fail Dial
// before it connects.
func TestCheckOptions(t *testing.T) {
	dir := t.TempDir()
	c := testcert.Write(t)
	good := fingerprints(t, c.DER).spki
	for _, tt := range []struct {
		o    client.Options
		says string
	}{
		{client.Options{}, "no way to check the server's certificate"},
		{client.Options{PinFile: c.CertFile, CAFile: c.CertFile}, "PinFile and CAFile are set"},
		{client.Options{PinSHA256: good, SystemRoots: true}, "PinSHA256 and SystemRoots are set"},
		{client.Options{PinKeyFile: c.CertFile, PinSHA256: good, CAFile: c.CertFile}, "PinKeyFile and PinSHA256 and CAFile are set"},
		{client.Options{CAFile: filepath.Join(dir, "missing.pem")}, "read CA file"},
		{client.Options{CAFile: c.KeyFile}, "no PEM CERTIFICATE block"},
		{client.Options{PinKeyFile: c.KeyFile}, "no PEM CERTIFICATE or PUBLIC KEY block"},
		{client.Options{PinSHA256: "spki:abcd"}, "want sha256:<64 hex digits>"},
		{client.Options{PinSHA256: "sha256/abcd"}, "spki:<64 hex digits> or sha256/<base64>"},
	} {
		tt.o.Server = "127.0.0.1"
		_, err := client.Dial(context.Background(), tt.o)
		if err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%+v: %v, want %q", tt.o, err, tt.says)
		}
	}
}
