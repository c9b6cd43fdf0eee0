// Package testcert writes a throwaway RSA server certificate for tests.
package testcert

import (
	"crypto"
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
	DER               []byte // the leaf, for pinning
}

var (
	keyOnce sync.Once
	key     *rsa.PrivateKey
	keyErr  error
)

// Write writes an RSA-2048 self-signed certificate for localhost,
// 127.0.0.1 and ::1 into a temporary directory of t. The key is made once
// per test binary: RSA key generation is slow under the race detector.
func Write(t testing.TB) Cert {
	t.Helper()
	keyOnce.Do(func() { key, keyErr = rsa.GenerateKey(rand.Reader, 2048) })
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return WriteFor(t, key)
}

// WriteFor is Write with a key of the caller's (an ECDSA one, say, to test
// that the DHE_RSA engine refuses it).
func WriteFor(t testing.TB, key crypto.Signer) Cert {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "dtoperator test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := Cert{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), DER: der}
	write(t, c.CertFile, "CERTIFICATE", der)
	write(t, c.KeyFile, "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(key)))
	return c
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
