package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// spkiFingerprint hashes the certificate's public key: checked here against
// the key re-encoded from the parsed certificate (no openssl needed), and
// across a renewal that keeps the key.
func TestSPKIFingerprint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, _, err := ensureCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	spkiDER, err := x509.MarshalPKIXPublicKey(pair.Leaf.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(spkiDER)
	wantHex, wantB64 := "spki:"+hex.EncodeToString(sum[:]), "sha256/"+base64.StdEncoding.EncodeToString(sum[:])
	gotHex, gotB64 := spkiPins(t, certFile)
	if gotHex != wantHex || gotB64 != wantB64 {
		t.Errorf("spkiFingerprint = %s, %s; want %s, %s", gotHex, gotB64, wantHex, wantB64)
	}
	if len(gotHex) != len("spki:")+64 || len(gotB64) != len("sha256/")+44 {
		t.Errorf("pins %q, %q: want 64 hex digits and 44 base64 characters", gotHex, gotB64)
	}

	// A renewal: a new certificate (new serial, new validity) for the same key.
	tmpl, err := certTemplate()
	if err != nil {
		t.Fatal(err)
	}
	key := pair.PrivateKey.(*rsa.PrivateKey)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	renewed := writeFile(t, dir, "renewed.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	if h, b := spkiPins(t, renewed); h != gotHex || b != gotB64 {
		t.Errorf("renewed certificate's spki = %s, %s; want %s, %s", h, b, gotHex, gotB64)
	}
	if fingerprint(t, renewed) == fingerprint(t, certFile) {
		t.Error("renewed certificate has the old certificate fingerprint")
	}

	keyOnly := writeFile(t, dir, "keyonly.pem", mustRead(t, keyFile))
	if _, _, err := spkiFingerprint(keyOnly); !errors.Is(err, errNoCert) {
		t.Errorf("spki of a key file: %v, want errNoCert", err)
	}
	if _, _, err := spkiFingerprint(filepath.Join(dir, "missing.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("spki of a missing file: %v", err)
	}
}

// spkiPins returns spkiFingerprint(certFile) or fails.
func spkiPins(t *testing.T, certFile string) (hexPin, base64Pin string) {
	t.Helper()
	h, b, err := spkiFingerprint(certFile)
	if err != nil {
		t.Fatal(err)
	}
	return h, b
}

// The start-up line carries all three pins, fingerprint= as before.
func TestCertificateLogLine(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	certFile, _, err := certificate(Config{Data: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	h, b := spkiPins(t, certFile)
	line := buf.String()
	for _, want := range []string{
		`msg="certificate: clients pin one of these"`,
		" fingerprint=" + fingerprint(t, certFile) + " ",
		" spki=" + h + " ",
		` spki_base64="` + b + `" `, // the text handler quotes the padding's '='
		" new=true",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}
}
