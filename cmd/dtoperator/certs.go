package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Generated certificate settings. The key must be RSA: the 2017 Android
// client only offers TLS_DHE_RSA_WITH_AES_256_GCM_SHA384.
const (
	certName     = "cert.pem"
	keyName      = "key.pem"
	certCN       = "dtoperator"
	certRSABits  = 2048
	certValidFor = 10 * 365 * 24 * time.Hour
	dataDirMode  = 0o700
)

// ensureCert returns the self-signed certificate and key files in dataDir,
// generating them (and dataDir) if they are missing, don't parse, don't
// match or are not RSA. created reports whether new files were written;
// the key is new too, so both fingerprints (certFingerprint,
// spkiFingerprint) change, and clients that pin either must learn the new
// one.
func ensureCert(dataDir string) (certFile, keyFile string, created bool, err error) {
	certFile = filepath.Join(dataDir, certName)
	keyFile = filepath.Join(dataDir, keyName)
	if usableCert(certFile, keyFile) {
		return certFile, keyFile, false, nil
	}
	if err := os.MkdirAll(dataDir, dataDirMode); err != nil {
		return "", "", false, fmt.Errorf("create data folder: %w", err)
	}
	certPEM, keyPEM, err := newSelfSigned()
	if err != nil {
		return "", "", false, err
	}
	// Key first: if we stop in between, the pair doesn't match and the next
	// start generates a new one.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return "", "", false, fmt.Errorf("write key: %w", err)
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return "", "", false, fmt.Errorf("write certificate: %w", err)
	}
	return certFile, keyFile, true, nil
}

// usableCert reports whether certFile and keyFile hold a matching RSA pair.
func usableCert(certFile, keyFile string) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return false
	}
	_, isRSA := pair.PrivateKey.(*rsa.PrivateKey)
	return isRSA
}

// newSelfSigned generates an RSA key and a self-signed server certificate
// for localhost, the loopback addresses and this host's name, in PEM.
func newSelfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, certRSABits)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	tmpl, err := certTemplate()
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// certTemplate describes the self-signed certificate.
func certTemplate() (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: certCN},
		NotBefore:             now.Add(-time.Hour), // tolerate clients whose clock is behind
		NotAfter:              now.Add(certValidFor),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host, err := os.Hostname(); err == nil && host != "" && host != "localhost" {
		if ip := net.ParseIP(host); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	return tmpl, nil
}

// certFingerprint returns the certificate pin of the first certificate in
// certFile: "sha256:" and the lower-case hex SHA-256 of its DER encoding.
// Any new certificate changes it, even one renewed with the same key.
func certFingerprint(certFile string) (string, error) {
	leaf, err := firstCert(certFile)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(leaf.Raw)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// spkiFingerprint returns the public-key pin of the first certificate in
// certFile, the SHA-256 of its DER SubjectPublicKeyInfo, in both forms
// clients take: "spki:" and lower-case hex, and "sha256/" and standard
// base64 (the HPKP and curl --pinnedpubkey form). A certificate renewed
// with the same key keeps it.
func spkiFingerprint(certFile string) (hexPin, base64Pin string, err error) {
	leaf, err := firstCert(certFile)
	if err != nil {
		return "", "", err
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return "spki:" + hex.EncodeToString(sum[:]), "sha256/" + base64.StdEncoding.EncodeToString(sum[:]), nil
}

// firstCert parses the first PEM certificate in certFile.
func firstCert(certFile string) (*x509.Certificate, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", certFile, err)
		}
		return leaf, nil
	}
	return nil, fmt.Errorf("%s: %w", certFile, errNoCert)
}

// errNoCert means a file holds no PEM certificate.
var errNoCert = errors.New("no PEM certificate found")
