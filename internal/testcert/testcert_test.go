package testcert

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRenewKeepsTheKey(t *testing.T) {
	old := Write(t)
	renewed := Renew(t, old)
	a, b := parse(t, old.DER), parse(t, renewed.DER)
	if bytes.Equal(old.DER, renewed.DER) || a.SerialNumber.Cmp(b.SerialNumber) == 0 || a.NotAfter.Equal(b.NotAfter) {
		t.Fatal("renewed certificate has the old DER, serial or validity")
	}
	if !bytes.Equal(a.RawSubjectPublicKeyInfo, b.RawSubjectPublicKeyInfo) {
		t.Fatal("renewed certificate has another public key")
	}
	if err := b.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(renewed.CertFile, renewed.KeyFile); err != nil {
		t.Fatal(err)
	}
}

func TestCAIssue(t *testing.T) {
	ca := WriteCA(t)
	c := ca.Issue(t, "localhost", "127.0.0.1")
	if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	leaf := parse(t, c.DER)
	for _, name := range []string{"localhost", "127.0.0.1"} {
		opts := x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := leaf.Verify(opts); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "example.com"}); err == nil {
		t.Error("certificate verifies for a name it lacks")
	}
	other := x509.NewCertPool()
	other.AddCert(WriteCA(t).Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: other, DNSName: "localhost"}); err == nil {
		t.Error("certificate verifies under another CA")
	}
}

func parse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
