package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"path/filepath"
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
// public key. These are the forms of dtcall --pin and of package client
// (client.ParsePin). A file may not exist yet when dtload starts (the
// server writes it on its first start), so it is read by load.
type pinSpec struct {
	text string      // as given
	file string      // the PEM file; "" for a fingerprint
	pin  *client.Pin // nil until load for a file
}

// parsePin parses --pin without reading a file: a fingerprint is checked
// here, a file by load.
func parsePin(s string) (pinSpec, error) {
	p := pinSpec{text: s}
	if !client.IsFingerprint(s) {
		p.file = s
		return p, nil
	}
	pin, err := client.ParsePin(s)
	if err != nil {
		return pinSpec{}, fmt.Errorf("--pin %q: want sha256:<64 hex digits> (certificate), spki:<64 hex digits> or sha256/<base64> (public key), or a PEM file", s)
	}
	p.pin = pin
	return p, nil
}

// load reads a file pin: its first certificate.
func (p *pinSpec) load() error {
	if p.pin != nil {
		return nil
	}
	pin, err := client.ParsePin(p.file)
	if err != nil {
		return err
	}
	p.pin = pin
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

// readCertFile reports whether a PEM file holds a certificate yet.
func readCertFile(path string) error {
	_, err := client.ParsePin(path)
	return err
}

// verify checks the server's leaf certificate against the pin (loaded).
func (p pinSpec) verify(leaf *x509.Certificate) error { return p.pin.Verify(leaf) }

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
	err := readCertFile(p.file)
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
		if err = readCertFile(p.file); err != nil && !time.Now().Before(deadline) {
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
