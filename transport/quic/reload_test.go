package quic_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/transport/quic"
)

// TestReloadServesTheNewCertificate: after Reload, new handshakes get the
// new certificate (here an ECDSA one, as from a public CA) and connections
// made before carry on. Handshakes are counted by outcome.
func TestReloadServesTheNewCertificate(t *testing.T) {
	e := start(t, core.Config{})
	before := e.online("alice", true)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	renewed := testcert.WriteFor(t, key)
	if err := e.srv.Reload(renewed.CertFile, renewed.KeyFile); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.dialQUIC(quic.ALPN); err == nil {
		t.Fatal("a handshake pinned to the old certificate succeeded after the reload")
	}
	old := e.cert
	e.cert = renewed
	after := e.online("bob", false)
	e.cert = old
	call(t, before, after) // the old connection still works, with the new one
	before.say("end", "bob")
	after.expect("call|end|alice")

	if err := e.srv.Reload("/nonexistent/cert.pem", renewed.KeyFile); err == nil {
		t.Error("Reload of a missing file succeeded")
	}
	e.cert = renewed
	e.online("carol", false) // a failed reload changed nothing

	if _, _, err := e.dialQUIC("not-dtcall"); err == nil {
		t.Fatal("wrong ALPN accepted")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		hs := e.srv.Stats().Handshakes
		if hs["ok"] >= 3 && hs["failed"] >= 2 {
			t.Logf("handshakes: %v", hs)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handshakes %v: want ok >= 3 (alice, bob, carol) and failed >= 2 (old pin, ALPN)", hs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
