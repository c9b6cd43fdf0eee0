package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtcall/dtcall/client"
)

// pinHelp is the --pin flag's help: the forms dtcall --pin takes.
const pinHelp = "server certificate: PEM file (e.g. dtoperator's DATA/cert.pem), or sha256:HEX, spki:HEX or sha256/BASE64 as dtoperator logs them"

// pinUsage is the error for a missing --pin.
const pinUsage = "need --pin FILE|sha256:HEX|spki:HEX|sha256/BASE64 (dtoperator logs them at start)"

// pinSpec is --pin: a PEM certificate file (its first certificate is
// pinned, whole), or a fingerprint in one of the forms dtoperator logs:
// "sha256:HEX" of the certificate, "spki:HEX" or "sha256/BASE64" of its
// public key. These are the forms of dtcall --pin and of package client.
type pinSpec struct {
	text string // as given
	file string // the PEM file; "" for a fingerprint
	key  bool   // sum is of the SubjectPublicKeyInfo, not of the certificate
	sum  [sha256.Size]byte
}

// isFingerprint says whether --pin s is a fingerprint rather than a file.
func isFingerprint(s string) bool {
	return strings.HasPrefix(s, "sha256:") || strings.HasPrefix(s, "spki:") || strings.HasPrefix(s, "sha256/")
}

// parsePin parses --pin without reading a file: a fingerprint is checked
// here, a file by load.
func parsePin(s string) (pinSpec, error) {
	p := pinSpec{text: s}
	if !isFingerprint(s) {
		p.file = s
		return p, nil
	}
	var b []byte
	var err error
	if h, ok := strings.CutPrefix(s, "sha256:"); ok {
		b, err = hex.DecodeString(strings.ReplaceAll(h, ":", ""))
	} else if h, ok := strings.CutPrefix(s, "spki:"); ok {
		p.key = true
		b, err = hex.DecodeString(strings.ReplaceAll(h, ":", ""))
	} else {
		p.key = true
		b64, _ := strings.CutPrefix(s, "sha256/")
		if len(b64) == 45 && b64[0] == '/' { // curl's sha256//BASE64
			b64 = b64[1:]
		}
		b, err = base64.StdEncoding.Strict().DecodeString(b64)
	}
	if err != nil || len(b) != sha256.Size {
		return pinSpec{}, fmt.Errorf("--pin %q: want sha256:<64 hex digits> (certificate), spki:<64 hex digits> or sha256/<base64> (public key), or a PEM file", s)
	}
	p.sum = [sha256.Size]byte(b)
	return p, nil
}

// load reads a file pin: the SHA-256 of the file's first certificate.
func (p *pinSpec) load() error {
	if p.file == "" {
		return nil
	}
	c, err := readCertFile(p.file)
	if err != nil {
		return err
	}
	p.sum = sha256.Sum256(c.Raw)
	return nil
}

// noCertError says that the certificate file did not appear in time.
func noCertError(file string, bound time.Duration, err error) error {
	hint := "is the path right?"
	if filepath.Base(file) == "cert.pem" {
		hint = fmt.Sprintf("is dtoperator running with --data %s? It writes cert.pem there on its first start", filepath.Dir(file))
	}
	return fmt.Errorf("no server certificate in %s after waiting %v (%v): %s (--wait sets how long dtload waits)", file, bound, err, hint)
}

// readCertFile parses the first CERTIFICATE block of a PEM file.
func readCertFile(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil, fmt.Errorf("pin file %s: no PEM CERTIFICATE block", path)
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("pin file %s: %w", path, err)
			}
			return c, nil
		}
	}
}

// matches says whether the server's leaf certificate matches the pin.
func (p pinSpec) matches(leaf *x509.Certificate) bool {
	if p.key {
		return sha256.Sum256(leaf.RawSubjectPublicKeyInfo) == p.sum
	}
	return sha256.Sum256(leaf.Raw) == p.sum
}

// setOptions makes a dtcall client check the server with the pin.
func (p pinSpec) setOptions(o *client.Options) {
	if p.file != "" {
		o.PinFile = p.file
	} else {
		o.PinSHA256 = p.text
	}
}

// defaultWait is how long dtload waits by default for a server that is
// starting (--wait).
const defaultWait = 30 * time.Second

// pollEvery is how often dtload looks for the certificate, and retries a
// server that does not answer yet, while it waits.
const pollEvery = 100 * time.Millisecond

// awaitServer is the wait before a run (--wait). With --pin FILE it waits
// up to bound for the file to exist and hold a certificate: dtoperator
// writes its self-signed certificate on its first start, so a server
// started just before dtload may not have written it yet. If it had to
// wait (the server is starting) and probe is set, it then dials the server
// (without logging in), retrying within the same bound until the server
// answers. A fingerprint pin, or a certificate file that is there from
// the start, skips both waits; bound <= 0 waits for nothing. Messages go
// to msgs. A server that does not match the pin fails the wait at once.
func awaitServer(ctx context.Context, p pinSpec, bound time.Duration, probe *client.Options, msgs io.Writer) error {
	if p.file == "" {
		return nil
	}
	start := time.Now()
	deadline := start.Add(bound)
	_, err := readCertFile(p.file)
	if err == nil {
		return nil
	}
	if bound <= 0 {
		return err
	}
	fmt.Fprintf(msgs, "dtload: waiting up to %v for the server's certificate %s (dtoperator writes it on its first start): %v\n", bound, p.file, err)
	for err != nil {
		next := time.Now().Add(pollEvery)
		if next.After(deadline) {
			next = deadline
		}
		if !sleepUntil(ctx, next) {
			return ctx.Err()
		}
		if _, err = readCertFile(p.file); err != nil && !time.Now().Before(deadline) {
			return noCertError(p.file, bound, err)
		}
	}
	if probe == nil {
		fmt.Fprintf(msgs, "dtload: certificate %s is there after %.1fs\n", p.file, time.Since(start).Seconds())
		return nil
	}
	o := *probe
	p.setOptions(&o)
	o.Timeout, o.Keepalive = stepTimeout, -1
	for {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		c, err := client.Dial(dctx, o)
		cancel()
		if err == nil {
			c.Close()
			fmt.Fprintf(msgs, "dtload: certificate %s is there and the server answers, after %.1fs\n", p.file, time.Since(start).Seconds())
			return nil
		}
		var pe *client.PinError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &pe):
			return err
		case !time.Now().Add(pollEvery).Before(deadline):
			return fmt.Errorf("the certificate %s is there, but the server did not answer within %v: %w", p.file, bound, err)
		}
		if !sleepUntil(ctx, time.Now().Add(pollEvery)) {
			return ctx.Err()
		}
	}
}
