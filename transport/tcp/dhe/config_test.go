//go:build cgo && !nodhe

package dhe

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDHParamsFile(t *testing.T) {
	tests := []struct {
		name, file, ciphers string
		bits                int
		suite               uint16
	}{
		{name: "auto", file: "", bits: 2048, suite: suiteDHE}, // automatic: matches the RSA-2048 key
		{name: "ffdhe2048", file: "testdata/ffdhe2048.pem", bits: 2048, suite: suiteDHE},
		{name: "ffdhe3072", file: "testdata/ffdhe3072.pem", bits: 3072, suite: suiteDHE},
		{name: "x942", file: "testdata/x942-rfc5114-2048-224.pem", bits: 2048, suite: suiteDHE},
		{name: "dh1024-seclevel1", file: "testdata/dh1024.pem", ciphers: "DHE-RSA-AES256-GCM-SHA384:@SECLEVEL=1", bits: 1024, suite: suiteDHE},
		{name: "aes128-gcm", file: "testdata/ffdhe2048.pem", bits: 2048, suite: 0x009e},                                          // DHE-RSA-AES128-GCM-SHA256
		{name: "operator-cbc-list", file: "testdata/ffdhe2048.pem", ciphers: "DHE-RSA-AES256-SHA256", bits: 2048, suite: 0x006b}, // an operator's CBC list
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newServer(t, Config{DHParamsFile: tt.file, Ciphers: tt.ciphers})
			ts := startServer(t, srv, echo)
			c := dial(t, ts.addr(), tt.suite)
			if got := c.ConnectionState().CipherSuite; got != tt.suite {
				t.Fatalf("suite %#04x, want %#04x", got, tt.suite)
			}
			skx := c.GetHandshakeLog().ServerKeyExchange
			if skx == nil || skx.DHParams == nil || skx.DHParams.Prime.BitLen() != tt.bits {
				t.Fatalf("server DH group is not %d bits: %+v", tt.bits, skx)
			}
			roundTrip(t, c, []byte("D"))
		})
	}
}

func TestNewServerErrors(t *testing.T) {
	cert, key, _ := certFiles(t, nil)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, mismatchedKey, _ := certFiles(t, otherKey)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecCert, ecKeyFile, _ := certFiles(t, ecKey)
	ecParams := filepath.Join(t.TempDir(), "ec.pem")
	if err := os.WriteFile(ecParams, []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")

	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error
	}{
		{"no-files", Config{}, []string{"certificate file and a key file are required"}},
		{"missing-cert", Config{CertFile: missing, KeyFile: key}, []string{"certificate file " + missing, "No such file"}},
		{"missing-key", Config{CertFile: cert, KeyFile: missing}, []string{"key file " + missing}},
		{"mismatched-key", Config{CertFile: cert, KeyFile: mismatchedKey}, []string{"key file " + mismatchedKey, "key values mismatch"}},
		{"ec-cert", Config{CertFile: ecCert, KeyFile: ecKeyFile}, []string{"certificate file " + ecCert, "not an RSA key"}},
		{"dh-1024", Config{CertFile: cert, KeyFile: key, DHParamsFile: "testdata/dh1024.pem"},
			[]string{"dhfile testdata/dh1024.pem: DH parameters of 1024 bits are below OpenSSL security level 2; use 2048+ bits or add @SECLEVEL=1 to ciphers"}},
		{"dh-2048-seclevel-3", Config{CertFile: cert, KeyFile: key, DHParamsFile: "testdata/ffdhe2048.pem", Ciphers: DefaultCiphers + ":@SECLEVEL=3"},
			[]string{"certificate file"}}, // the RSA-2048 certificate is refused first
		{"dh-missing", Config{CertFile: cert, KeyFile: key, DHParamsFile: missing}, []string{"dhfile " + missing, "No such file"}},
		{"dh-not-pem", Config{CertFile: cert, KeyFile: key, DHParamsFile: "testdata/README.md"}, []string{"dhfile testdata/README.md", "openssl:"}},
		{"dh-ec-params", Config{CertFile: cert, KeyFile: key, DHParamsFile: ecParams}, []string{"dhfile " + ecParams, "not DH PARAMETERS"}},
		{"ciphers-no-dhe", Config{CertFile: cert, KeyFile: key, Ciphers: "ECDHE-RSA-AES128-GCM-SHA256"}, []string{`ciphers "ECDHE-RSA-AES128-GCM-SHA256" enable no DHE cipher suite`}},
		{"ciphers-bad", Config{CertFile: cert, KeyFile: key, Ciphers: "NO-SUCH-CIPHER"}, []string{`ciphers "NO-SUCH-CIPHER"`, "no cipher match"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewServer(tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("NewServer succeeded")
			}
			t.Log(err)
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestAvailable(t *testing.T) {
	if !Available {
		t.Fatal("Available = false in the cgo build")
	}
}
