package tcp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/transport/tcp"
)

// TestReloadCertificates: Reload swaps the DHE engine's RSA certificate and
// the certificate crypto/tls serves (here a separate ECDSA one, as from a
// public CA) for new handshakes; a phone connected before carries on. The
// handshakes are counted by engine and outcome.
func TestReloadCertificates(t *testing.T) {
	e := start(t, core.Config{}, tcp.Config{})
	before := e.online("alice", modern)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	legacyCert, modernCert := testcert.WriteFor(t, rsaKey), testcert.WriteFor(t, ecKey)
	if err := e.front.Reload(tcp.Config{
		CertFile: legacyCert.CertFile, KeyFile: legacyCert.KeyFile,
		ModernCertFile: modernCert.CertFile, ModernKeyFile: modernCert.KeyFile,
	}); err != nil {
		t.Fatal(err)
	}
	if c, err := e.dial(e.cmdAddr, modern, ""); err == nil {
		c.Close()
		t.Fatal("a handshake pinned to the old certificate succeeded after the reload")
	}
	old := e.cert
	e.cert = modernCert
	bob := e.online("bob", modern)
	e.cert = legacyCert
	var carol *phone
	if e.front.DHEAvailable() {
		carol = e.online("carol", android17)
	}
	e.cert = old
	call(t, before, bob)
	before.say("end", "bob")
	bob.expect("call|end|alice")

	if err := e.front.Reload(tcp.Config{CertFile: "/nonexistent", KeyFile: legacyCert.KeyFile}); err == nil {
		t.Error("Reload of a missing certificate succeeded")
	}
	e.cert = modernCert
	e.online("dave", modern) // the failed reload changed nothing

	hs := e.front.Stats().Handshakes
	t.Logf("handshakes: %v", hs)
	if hs[tcp.EngineGo][tcp.HandshakeOK] < 4 || hs[tcp.EngineGo][tcp.HandshakeFailed] < 1 {
		t.Errorf("crypto/tls handshakes %v: want ok >= 4, failed >= 1", hs[tcp.EngineGo])
	}
	if carol != nil && hs[tcp.EngineOpenSSL][tcp.HandshakeOK] < 2 {
		t.Errorf("OpenSSL handshakes %v: want ok >= 2 (carol's command and media)", hs[tcp.EngineOpenSSL])
	}
}
