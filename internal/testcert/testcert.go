// Package testcert writes throwaway server certificates for tests: a
// self-signed RSA one (Write), a renewal of it with the same key (Renew),
// and a test CA that issues certificates for given names (WriteCA).
package testcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Cert is a certificate and key written to files.
type Cert struct {
	CertFile, KeyFile string
	DER               []byte        // the leaf, for pinning
	Key               crypto.Signer // the leaf's private key
}

var (
	keyOnce sync.Once
	key     *rsa.PrivateKey
	keyErr  error
)

// rsaKey returns the RSA-2048 key shared by the test binary: RSA key
// generation is slow under the race detector.
func rsaKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() { key, keyErr = rsa.GenerateKey(rand.Reader, 2048) })
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return key
}

// Write writes an RSA-2048 self-signed certificate for localhost,
// 127.0.0.1 and ::1 into a temporary directory of t. The key is made once
// per test binary, so every Write shares it.
func Write(t testing.TB) Cert {
	t.Helper()
	return WriteFor(t, rsaKey(t))
}

// WriteFor is Write with a key of the caller's (an ECDSA one, say, to test
// that the DHE_RSA engine refuses it).
func WriteFor(t testing.TB, key crypto.Signer) Cert {
	t.Helper()
	tmpl := leafTemplate(t, "dtoperator test", "localhost", "127.0.0.1", "::1")
	return writeCert(t, tmpl, tmpl, key, key)
}

// Renew writes a new self-signed certificate for c's key and names, as an
// operator renewing an expired certificate would: a new serial number and
// validity, the same public key. Its certificate pin differs from c's, its
// public-key pin does not.
func Renew(t testing.TB, c Cert) Cert {
	t.Helper()
	old, err := x509.ParseCertificate(c.DER)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := leafTemplate(t, old.Subject.CommonName)
	tmpl.DNSNames, tmpl.IPAddresses = old.DNSNames, old.IPAddresses
	tmpl.NotBefore = old.NotBefore.Add(time.Minute) // never the same validity, even within a second
	tmpl.NotAfter = old.NotAfter.Add(time.Hour)
	return writeCert(t, tmpl, tmpl, c.Key, c.Key)
}

// CA is a test certificate authority: a self-signed CA certificate, written
// to CertFile (PEM), and its key.
type CA struct {
	CertFile string
	Cert     *x509.Certificate
	Key      crypto.Signer
}

// WriteCA makes a new CA (ECDSA P-256) and writes its certificate into a
// temporary directory of t.
func WriteCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "dtcall test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	write(t, file, "CERTIFICATE", der)
	return &CA{CertFile: file, Cert: cert, Key: key}
}

// Issue writes a server certificate signed by ca for names: host names,
// or IP addresses for the certificate's IP SANs. Its key is the shared
// RSA key of Write (the DHE_RSA engine needs RSA).
func (ca *CA) Issue(t testing.TB, names ...string) Cert {
	t.Helper()
	tmpl := leafTemplate(t, names[0], names...)
	return writeCert(t, tmpl, ca.Cert, rsaKey(t), ca.Key)
}

// leafTemplate is a server certificate for names (host names or IPs),
// valid from an hour ago for a day.
func leafTemplate(t testing.TB, cn string, names ...string) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return tmpl
}

// writeCert signs tmpl for key with parent and parentKey and writes the
// certificate and key into a temporary directory of t.
func writeCert(t testing.TB, tmpl, parent *x509.Certificate, key, parentKey crypto.Signer) Cert {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := Cert{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), DER: der, Key: key}
	write(t, c.CertFile, "CERTIFICATE", der)
	write(t, c.KeyFile, "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(key)))
	return c
}

// serial is a random 64-bit serial number.
func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func write(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
