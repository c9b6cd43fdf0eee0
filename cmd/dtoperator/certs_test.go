package main

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestEnsureCert(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state", "dtoperator")
	certFile, keyFile, created, err := ensureCert(dir)
	if err != nil || !created {
		t.Fatalf("ensureCert = %v, created %v; want a new certificate", err, created)
	}
	checkMode(t, dir, os.ModeDir|dataDirMode)
	checkMode(t, keyFile, 0o600)
	leaf := loadLeaf(t, certFile, keyFile)
	checkLeaf(t, leaf)
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("data folder holds %d files, want 2 (no temporary files)", len(entries))
	}

	fp1 := fingerprint(t, certFile)
	certFile2, keyFile2, created, err := ensureCert(dir)
	if err != nil || created || certFile2 != certFile || keyFile2 != keyFile {
		t.Fatalf("second ensureCert = %q, %q, created %v, %v; want reuse", certFile2, keyFile2, created, err)
	}
	if fp2 := fingerprint(t, certFile); fp2 != fp1 {
		t.Errorf("fingerprint changed on reuse: %s, then %s", fp1, fp2)
	}
}

// checkLeaf checks the generated certificate's key, names and usage.
func checkLeaf(t *testing.T, leaf *x509.Certificate) {
	t.Helper()
	key, ok := leaf.PublicKey.(*rsa.PublicKey)
	if !ok || key.N.BitLen() != certRSABits {
		t.Errorf("public key %T, want RSA %d", leaf.PublicKey, certRSABits)
	}
	if leaf.Subject.CommonName != "dtoperator" {
		t.Errorf("CN = %q", leaf.Subject.CommonName)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 10*365*24*time.Hour {
		t.Errorf("valid for %v, want 10 years", life)
	}
	host, _ := os.Hostname()
	for _, name := range []string{"localhost", "127.0.0.1", "::1", host} {
		if err := leaf.VerifyHostname(name); name != "" && err != nil {
			t.Errorf("certificate not valid for %q: %v", name, err)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	opts := x509.VerifyOptions{Roots: roots, DNSName: "localhost", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		t.Errorf("certificate does not verify for server auth: %v", err)
	}
	if !slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv6loopback) }) {
		t.Errorf("IP SANs %v lack ::1", leaf.IPAddresses)
	}
}

// loadLeaf loads the key pair and returns its parsed certificate.
func loadLeaf(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf
}

// fingerprint returns certFingerprint(certFile) or fails.
func fingerprint(t *testing.T, certFile string) string {
	t.Helper()
	fp, err := certFingerprint(certFile)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func TestEnsureCertReplacesBrokenFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, _, err := ensureCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	fp := fingerprint(t, certFile)
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, created, err := ensureCert(dir); err != nil || !created {
		t.Fatalf("ensureCert over a corrupt certificate = created %v, %v; want a new one", created, err)
	}
	if fp2 := fingerprint(t, certFile); fp2 == fp {
		t.Error("fingerprint unchanged after regenerating")
	}
	loadLeaf(t, certFile, keyFile)

	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if _, _, created, err := ensureCert(dir); err != nil || !created {
		t.Fatalf("ensureCert without key = created %v, %v; want a new pair", created, err)
	}
	loadLeaf(t, certFile, keyFile)
}

func TestEnsureCertUnwritable(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ensureCert(filepath.Join(file, "sub")); err == nil {
		t.Fatal("ensureCert under a regular file succeeded")
	}
}

func TestCertFingerprint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, _, err := ensureCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(loadLeaf(t, certFile, keyFile).Raw)
	if got, want := fingerprint(t, certFile), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("fingerprint = %s, want %s", got, want)
	}

	keyOnly := writeFile(t, dir, "keyonly.pem", mustRead(t, keyFile))
	if _, err := certFingerprint(keyOnly); !errors.Is(err, errNoCert) {
		t.Errorf("fingerprint of a key file: %v, want errNoCert", err)
	}
	bad := writeFile(t, dir, "bad.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	if _, err := certFingerprint(bad); err == nil {
		t.Error("fingerprint of a corrupt certificate succeeded")
	}
	if _, err := certFingerprint(filepath.Join(dir, "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fingerprint of a missing file: %v", err)
	}
}

// mustRead returns the content of path.
func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
