package client

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// PinKind says what a pin covers.
type PinKind int

const (
	// CertificatePin is the SHA-256 of the leaf certificate's DER
	// ("sha256:HEX", Options.PinFile). Any new certificate breaks it, even
	// one renewed with the same key.
	CertificatePin PinKind = iota + 1
	// PublicKeyPin is the SHA-256 of the leaf's SubjectPublicKeyInfo
	// ("spki:HEX", "sha256/BASE64", Options.PinKeyFile). It survives a
	// renewal that keeps the key.
	PublicKeyPin
)

func (k PinKind) String() string {
	switch k {
	case CertificatePin:
		return "certificate"
	case PublicKeyPin:
		return "public key"
	}
	return fmt.Sprintf("PinKind(%d)", int(k))
}

// pin is how the client checks the server's certificate: a pin of its
// certificate or public key, or (ca) a chain to trusted roots and the
// server's name. The zero pin accepts nothing.
type pin struct {
	kind   PinKind           // 0 in CA mode
	sum    [sha256.Size]byte // of the leaf's DER, or of its SubjectPublicKeyInfo
	base64 bool              // a public-key pin written sha256/BASE64: errors show that form

	ca    bool           // CA mode
	roots *x509.CertPool // CA mode: the trusted roots; nil means the system's
}

// String is the pin as the user writes it (meaningless in CA mode).
func (p pin) String() string {
	switch {
	case p.kind == PublicKeyPin && p.base64:
		return spkiBase64(p.sum)
	case p.kind == PublicKeyPin:
		return spkiHex(p.sum)
	}
	return certHex(p.sum)
}

// The three ways a fingerprint is written.
func certHex(sum [sha256.Size]byte) string { return "sha256:" + hex.EncodeToString(sum[:]) }
func spkiHex(sum [sha256.Size]byte) string { return "spki:" + hex.EncodeToString(sum[:]) }
func spkiBase64(sum [sha256.Size]byte) string {
	return "sha256/" + base64.StdEncoding.EncodeToString(sum[:])
}

// loadPin reads how to check the server from exactly one of PinFile,
// PinKeyFile, PinSHA256, CAFile and SystemRoots.
func (o *Options) loadPin() (pin, error) {
	var set []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"PinFile", o.PinFile != ""}, {"PinKeyFile", o.PinKeyFile != ""}, {"PinSHA256", o.PinSHA256 != ""},
		{"CAFile", o.CAFile != ""}, {"SystemRoots", o.SystemRoots},
	} {
		if f.set {
			set = append(set, f.name)
		}
	}
	switch {
	case len(set) == 0:
		return pin{}, errors.New("no way to check the server's certificate: set a pin (PinFile, PinKeyFile or PinSHA256) or a CA (CAFile or SystemRoots)")
	case len(set) > 1:
		return pin{}, fmt.Errorf("check the server's certificate one way only: %s are set", strings.Join(set, " and "))
	case o.PinFile != "":
		return pinFromFile(o.PinFile, CertificatePin)
	case o.PinKeyFile != "":
		return pinFromFile(o.PinKeyFile, PublicKeyPin)
	case o.PinSHA256 != "":
		return parsePin(o.PinSHA256)
	case o.CAFile != "":
		return caFromFile(o.CAFile)
	}
	return pin{ca: true}, nil // SystemRoots
}

// pinSyntax lists the forms parsePin takes.
const pinSyntax = "want sha256:<64 hex digits> (certificate), spki:<64 hex digits> or sha256/<base64> (public key)"

// parsePin parses "sha256:HEX" (a certificate pin), "spki:HEX" or
// "sha256/BASE64" (public-key pins). HEX is 64 hex digits, either case,
// colons between byte pairs allowed; BASE64 is standard base64 with
// padding, and curl's "sha256//BASE64" is taken too.
func parsePin(s string) (pin, error) {
	var p pin
	var b []byte
	var err error
	if h, ok := strings.CutPrefix(s, "sha256:"); ok {
		p.kind = CertificatePin
		b, err = hex.DecodeString(strings.ReplaceAll(h, ":", ""))
	} else if h, ok := strings.CutPrefix(s, "spki:"); ok {
		p.kind = PublicKeyPin
		b, err = hex.DecodeString(strings.ReplaceAll(h, ":", ""))
	} else if b64, ok := strings.CutPrefix(s, "sha256/"); ok {
		p.kind, p.base64 = PublicKeyPin, true
		// 32 bytes are 44 base64 characters, so curl's extra slash is
		// never part of the value.
		if len(b64) == 45 && b64[0] == '/' {
			b64 = b64[1:]
		}
		b, err = base64.StdEncoding.Strict().DecodeString(b64)
	} else {
		return pin{}, fmt.Errorf("pin %q: %s", s, pinSyntax)
	}
	if err != nil || len(b) != sha256.Size {
		return pin{}, fmt.Errorf("pin %q: %s", s, pinSyntax)
	}
	p.sum = [sha256.Size]byte(b)
	return p, nil
}

// pinFromFile pins the first certificate in a PEM file: the whole
// certificate, or its public key. For a public-key pin the file may hold
// a PUBLIC KEY block instead (openssl x509 -pubkey -noout).
func pinFromFile(path string, kind PinKind) (pin, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return pin{}, fmt.Errorf("read pin file: %w", err)
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		switch {
		case b == nil && kind == PublicKeyPin:
			return pin{}, fmt.Errorf("pin file %s: no PEM CERTIFICATE or PUBLIC KEY block", path)
		case b == nil:
			return pin{}, fmt.Errorf("pin file %s: no PEM CERTIFICATE block", path)
		case b.Type == "CERTIFICATE" && kind == CertificatePin:
			return pin{kind: kind, sum: sha256.Sum256(b.Bytes)}, nil
		case b.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return pin{}, fmt.Errorf("pin file %s: %w", path, err)
			}
			return pin{kind: kind, sum: sha256.Sum256(c.RawSubjectPublicKeyInfo)}, nil
		case b.Type == "PUBLIC KEY" && kind == PublicKeyPin:
			if _, err := x509.ParsePKIXPublicKey(b.Bytes); err != nil {
				return pin{}, fmt.Errorf("pin file %s: %w", path, err)
			}
			return pin{kind: kind, sum: sha256.Sum256(b.Bytes)}, nil
		}
	}
}

// caFromFile trusts the CA certificates of a PEM bundle, and only them.
func caFromFile(path string) (pin, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return pin{}, fmt.Errorf("read CA file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(data) {
		return pin{}, fmt.Errorf("CA file %s: no PEM CERTIFICATE block", path)
	}
	return pin{ca: true, roots: roots}, nil
}

// PinError says that the server's certificate does not match the pin: the
// wrong server, a changed certificate or key, or someone in the middle.
type PinError struct {
	Kind PinKind // what the pin covers
	// Want is the pin, Got the server's value in the same form:
	// "sha256:HEX" for a certificate pin, "spki:HEX" or "sha256/BASE64"
	// for a public-key pin.
	Got, Want string
	// Cert, SPKI and SPKIBase64 are the server leaf's fingerprints in
	// every form, for the operator: "sha256:HEX" of the certificate,
	// "spki:HEX" and "sha256/BASE64" of its public key.
	Cert, SPKI, SPKIBase64 string
}

func (e *PinError) Error() string {
	changed := "certificate"
	if e.Kind == PublicKeyPin {
		changed = "key"
	}
	return fmt.Sprintf("server %v %s does not match the pinned %v %s (wrong server, changed %s, or someone in the middle; the server's certificate is %s, its public key %s = %s)",
		e.Kind, e.Got, e.Kind, e.Want, changed, e.Cert, e.SPKI, e.SPKIBase64)
}

// verifyLeaf checks the server's leaf certificate against the pin.
func (p pin) verifyLeaf(leaf *x509.Certificate) error {
	if p.kind != CertificatePin && p.kind != PublicKeyPin {
		return errors.New("no certificate pin")
	}
	cert, key := sha256.Sum256(leaf.Raw), sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	got := cert
	if p.kind == PublicKeyPin {
		got = key
	}
	if got == p.sum {
		return nil
	}
	e := &PinError{Kind: p.kind, Want: p.String(), Cert: certHex(cert), SPKI: spkiHex(key), SPKIBase64: spkiBase64(key)}
	e.Got = pin{kind: p.kind, sum: got, base64: p.base64}.String()
	return e
}

// Pin is a pin as the command-line tools take it (dtcall --pin, dtload
// --pin), for code that checks certificates itself (dtload's baseline
// forwarder) or sets Options from one string.
type Pin struct {
	file string // the PEM file it came from; "" for a fingerprint
	text string // as given
	p    pin
}

// IsFingerprint reports whether s is written as a fingerprint
// ("sha256:", "spki:" or "sha256/"), not as the path of a file.
func IsFingerprint(s string) bool {
	return strings.HasPrefix(s, "sha256:") || strings.HasPrefix(s, "spki:") || strings.HasPrefix(s, "sha256/")
}

// ParsePin parses s: a fingerprint in one of PinSHA256's forms, or else the
// path of a PEM certificate file, read now, whose first certificate is
// pinned whole (as PinFile).
func ParsePin(s string) (*Pin, error) {
	if IsFingerprint(s) {
		p, err := parsePin(s)
		if err != nil {
			return nil, err
		}
		return &Pin{text: s, p: p}, nil
	}
	p, err := pinFromFile(s, CertificatePin)
	if err != nil {
		return nil, err
	}
	return &Pin{file: s, text: s, p: p}, nil
}

// Verify checks a server's leaf certificate against the pin; a mismatch is
// a *PinError.
func (p *Pin) Verify(leaf *x509.Certificate) error { return p.p.verifyLeaf(leaf) }

// Set makes o check the server with the pin (PinFile or PinSHA256).
func (p *Pin) Set(o *Options) {
	if p.file != "" {
		o.PinFile = p.file
	} else {
		o.PinSHA256 = p.text
	}
}
