package client

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestParsePin(t *testing.T) {
	sum := sha256.Sum256([]byte("a public key"))
	h := hex.EncodeToString(sum[:])
	colons := strings.ToUpper(h[:2]) + ":" + h[2:4] + ":" + h[4:]
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	for _, tt := range []struct {
		in     string
		kind   PinKind
		base64 bool
	}{
		{"sha256:" + h, CertificatePin, false},
		{"sha256:" + strings.ToUpper(h), CertificatePin, false},
		{"sha256:" + colons, CertificatePin, false},
		{"spki:" + h, PublicKeyPin, false},
		{"spki:" + colons, PublicKeyPin, false},
		{"sha256/" + b64, PublicKeyPin, true},
		{"sha256//" + b64, PublicKeyPin, true}, // curl --pinnedpubkey
	} {
		p, err := parsePin(tt.in)
		if err != nil || p.kind != tt.kind || p.sum != sum || p.base64 != tt.base64 || p.ca {
			t.Errorf("parsePin(%q) = %+v, %v", tt.in, p, err)
		}
	}
	for _, bad := range []string{
		"", h, "sha1:" + h, "SHA256:" + h, "spki:" + h[:62], "spki:" + h + "00", "spki:" + h[:63] + "g",
		"sha256/" + base64.RawStdEncoding.EncodeToString(sum[:]), // no padding
		"sha256/" + base64.StdEncoding.EncodeToString(sum[:31]),
		"sha256/" + strings.NewReplacer("+", "-", "/", "_").Replace(b64) + "x", // URL alphabet, and too long
		"sha256///" + b64, "sha256/ " + b64, "pin-sha256=" + b64,
	} {
		if p, err := parsePin(bad); err == nil {
			t.Errorf("parsePin(%q) = %+v, want an error", bad, p)
		} else if !strings.Contains(err.Error(), pinSyntax) {
			t.Errorf("parsePin(%q): %v", bad, err)
		}
	}
}

// The forms round-trip: what String writes, parsePin reads back.
func TestPinString(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	for _, p := range []pin{
		{kind: CertificatePin, sum: sum},
		{kind: PublicKeyPin, sum: sum},
		{kind: PublicKeyPin, sum: sum, base64: true},
	} {
		q, err := parsePin(p.String())
		if err != nil || q != p {
			t.Errorf("parsePin(%q) = %+v, %v; want %+v", p.String(), q, err, p)
		}
	}
}

func TestZeroPinAcceptsNothing(t *testing.T) {
	if err := (pin{}).verifyLeaf(nil); err == nil {
		t.Fatal("the zero pin accepted a certificate")
	}
}
