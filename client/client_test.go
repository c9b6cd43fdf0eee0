package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/transport"
)

// kind is how a test client connects.
type kind struct {
	name string
	tr   client.Transport
	dhe  bool // TCP as the 2017 Android client: TLS 1.2, DHE only
}

var kinds = []kind{
	{"tcp", client.TCP, false},
	{"tcp-android2017", client.TCP, true},
	{"quic", client.QUIC, false},
	{"quic-datagram", client.QUICDatagram, false},
}

func (s *server) onlineAs(t testing.TB, user string, k kind) *client.Client {
	t.Helper()
	s.skipWithoutDHE(t, k)
	o := s.options(k.tr)
	o.TLS12DHEOnly = k.dhe
	c := s.dial(t, o)
	ctx := context.Background()
	if err := c.Login(ctx, user, "pw-"+user); err != nil {
		t.Fatalf("%s: login: %v", user, err)
	}
	if err := c.RegisterMedia(ctx); err != nil {
		t.Fatalf("%s: register media: %v", user, err)
	}
	return c
}

func expectCall(t *testing.T, a *client.Client, callee string, want client.CallResult) {
	t.Helper()
	got, err := a.Call(context.Background(), callee)
	if err != nil || got != want {
		t.Fatalf("%s calls %s: %v, %v; want %v", a.User(), callee, got, err, want)
	}
}

func expectRefused(t *testing.T, err error, command string) {
	t.Helper()
	var re *client.RefusedError
	if !errors.Is(err, client.ErrRefused) || !errors.As(err, &re) || re.Command != command {
		t.Fatalf("got %v, want %s refused", err, command)
	}
}

// Every reply and notification of PROTOCOL.md section 3, for every pairing
// of client kinds (caller side × callee side: legacy TLS, the 2017 Android
// client's DHE, QUIC stream mode, QUIC datagram mode), with media both ways
// during the call, a relogin across transports, and peer death.
func TestEveryReply(t *testing.T) {
	for _, ka := range kinds {
		for _, kb := range kinds {
			t.Run(ka.name+"→"+kb.name, func(t *testing.T) {
				t.Parallel()
				s := startServer(t, core.Config{MediaLossGrace: time.Millisecond})
				everyReply(t, [3]*server{s, s, s}, ka, kb)
			})
		}
	}
}

// everyReply runs the scenario with alice on on[0], bob on on[1], and carol
// and bob's second login on on[2]: one server three times, or three nodes
// of a cluster.
func everyReply(t *testing.T, on [3]*server, ka, kb kind) {
	ctx := context.Background()
	a, b := on[0].onlineAs(t, "alice", ka), on[1].onlineAs(t, "bob", kb)
	on[0].waitLocated(t, b)
	on[1].waitLocated(t, a)

	// lookup
	if ok, err := a.Lookup(ctx, "bob"); err != nil || !ok {
		t.Fatalf("lookup bob: %v, %v", ok, err)
	}
	if ok, err := a.Lookup(ctx, "zed"); err != nil || ok {
		t.Fatalf("lookup zed: %v, %v", ok, err)
	}
	// call: unknown, offline, oneself
	expectCall(t, a, "zed", client.NotAvailable)
	expectCall(t, a, "carol", client.NotAvailable)
	expectCall(t, a, "alice", client.Busy)
	// logged in without media: not available, and may not call
	ko := on[2].options(kb.tr)
	ko.TLS12DHEOnly = kb.dhe
	c := on[2].dial(t, ko)
	if err := c.Login(ctx, "carol", "pw-carol"); err != nil {
		t.Fatal(err)
	}
	expectCall(t, a, "carol", client.NotAvailable)
	_, err := c.Call(ctx, "alice")
	expectRefused(t, err, "call")
	if err := c.RegisterMedia(ctx); err != nil {
		t.Fatal(err)
	}
	on[0].waitLocated(t, c)
	on[1].waitLocated(t, c)

	// ring, busy while ringing, reject
	expectCall(t, a, "bob", client.Available)
	expectEvent(t, b, client.Incoming, "alice")
	expectCall(t, c, "bob", client.Busy)
	if err := b.Reject(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, a, client.Rejected, "bob")
	quiet(t, b)

	// the caller gives up
	expectCall(t, a, "bob", client.Available)
	expectEvent(t, b, client.Incoming, "alice")
	if err := a.Timeout(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, b, client.TimedOut, "alice")
	quiet(t, a)

	// the caller cancels while it rings
	expectCall(t, a, "bob", client.Available)
	expectEvent(t, b, client.Incoming, "alice")
	if err := a.End(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, b, client.Ended, "alice")
	quiet(t, a)

	// accept; busy in a call; media both ways; end
	call(t, a, b)
	expectCall(t, c, "alice", client.Busy)
	exchange(t, a, b, 4)
	if err := b.End(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, a, client.Ended, "bob")
	quiet(t, b)

	// commands that match no call are refused
	for cmd, f := range map[string]func(context.Context, string) error{
		"accept": a.Accept, "reject": a.Reject, "end": a.End, "timeout": a.Timeout,
	} {
		expectRefused(t, f(ctx, "bob"), cmd)
	}
	quiet(t, a)

	// as deployed clients do after a call: fresh media
	if err := a.RegisterMedia(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.RegisterMedia(ctx); err != nil {
		t.Fatal(err)
	}

	// bob logs in again with the caller's kind of client: the old
	// session ends, the new one calls
	b2 := on[2].onlineAs(t, "bob", ka)
	on[0].waitLocated(t, b2)
	expectClosed(t, b)
	call(t, a, b2)
	exchange(t, a, b2, 1)
	if err := a.End(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, b2, client.Ended, "alice")
	if err := a.RegisterMedia(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b2.RegisterMedia(ctx); err != nil {
		t.Fatal(err)
	}

	// the other party's connection dies in a call: drop
	call(t, a, b2)
	exchange(t, a, b2, 1)
	b2.Close()
	ev := expectEvent(t, a, client.Dropped, "bob")
	if ev.Value != a.SessionID() {
		t.Fatalf("drop carries %q, want own session id %s", ev.Value, a.SessionID())
	}

	// ... while ringing: end
	expectCall(t, a, "carol", client.Available)
	expectEvent(t, c, client.Incoming, "alice")
	c.Close()
	expectEvent(t, a, client.Ended, "carol")
	quiet(t, a)
}

// expectClosed waits until the server has ended c's session.
func expectClosed(t *testing.T, c *client.Client) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for range 1000 { // events pending before the close come first
		select {
		case _, ok := <-c.Events():
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("%s: old session still open", c.User())
		}
	}
	t.Fatalf("%s: old session still sending events", c.User())
}

// Legacy, QUIC stream and QUIC datagram clients call each other, every
// pairing, media byte-exact both ways.
func TestMixedCalls(t *testing.T) {
	trs := []client.Transport{client.TCP, client.QUIC, client.QUICDatagram}
	for _, ta := range trs {
		for _, tb := range trs {
			t.Run(ta.String()+"-"+tb.String(), func(t *testing.T) {
				t.Parallel()
				s := startServer(t, core.Config{})
				a, b := s.online(t, "alice", ta), s.online(t, "bob", tb)
				call(t, a, b)
				exchange(t, a, b, 4)
				if err := a.End(context.Background(), "bob"); err != nil {
					t.Fatal(err)
				}
				expectEvent(t, b, client.Ended, "alice")
			})
		}
	}
}

func TestLoginRefused(t *testing.T) {
	s := startServer(t, core.Config{})
	for _, tr := range []client.Transport{client.TCP, client.QUIC} {
		x := s.dial(t, s.options(tr))
		for _, up := range [][2]string{{"alice", "wrong"}, {"nobody", "pw"}} {
			err := x.Login(context.Background(), up[0], up[1])
			expectRefused(t, err, "login")
			if want := "login refused: wrong user name or password, or a stale clock"; err.Error() != want {
				t.Fatalf("error %q, want %q", err, want)
			}
		}
		if _, err := x.Lookup(context.Background(), "bob"); !errors.Is(err, client.ErrNotLoggedIn) {
			t.Fatalf("lookup before login: %v", err)
		}
		if err := x.Login(context.Background(), "a|b", "x"); err == nil {
			t.Fatal("a user name with '|' was sent")
		}
	}
}

// A second login as the same user closes the first client's channels.
func TestReloginElsewhere(t *testing.T) {
	for _, tr := range []client.Transport{client.TCP, client.QUIC} {
		t.Run(tr.String(), func(t *testing.T) {
			s := startServer(t, core.Config{})
			old := s.online(t, "alice", tr)
			fresh := s.online(t, "alice", client.QUIC)
			if fresh.SessionID() == old.SessionID() {
				t.Fatal("same session id")
			}
			select {
			case _, ok := <-old.Events():
				if ok {
					t.Fatal("unexpected event")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("old client's events not closed")
			}
			if old.Err() == nil {
				t.Fatal("old client: no error")
			}
			if _, err := old.Lookup(context.Background(), "bob"); err == nil {
				t.Fatal("old client still answers")
			}
			quiet(t, fresh)
		})
	}
}

// One party's media channel dies in a call: the other is told.
func TestDropOnMediaLoss(t *testing.T) {
	for _, tr := range []client.Transport{client.TCP, client.QUIC, client.QUICDatagram} {
		t.Run(tr.String(), func(t *testing.T) {
			s := startServer(t, core.Config{MediaLossGrace: time.Millisecond})
			a, b := s.online(t, "alice", tr), s.online(t, "bob", client.TCP)
			call(t, a, b)
			a.Media().Close()
			expectEvent(t, b, client.Dropped, "alice")
			quiet(t, a) // alice is still logged in and told nothing
		})
	}
}

// Keepalives are ignored in every state, and never relayed as media.
func TestKeepalive(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			s := startServer(t, core.Config{})
			a, b := s.onlineAs(t, "alice", k), s.onlineAs(t, "bob", kinds[0])
			for range 3 {
				if err := a.Keepalive(); err != nil {
					t.Fatal(err)
				}
			}
			quiet(t, a)
			call(t, a, b)
			for range 3 {
				if err := a.Keepalive(); err != nil {
					t.Fatal(err)
				}
			}
			exchange(t, a, b, 2) // a relayed "D" would misalign the frames
			quiet(t, a)
		})
	}
}

func TestPinning(t *testing.T) {
	s := startServer(t, core.Config{})
	sum := sha256.Sum256(s.der)
	good := "sha256:" + hex.EncodeToString(sum[:])
	other := otherCert(t)
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			s.skipWithoutDHE(t, k)
			o := s.options(k.tr)
			o.TLS12DHEOnly = k.dhe

			o.PinFile, o.PinSHA256 = "", good
			c := s.dial(t, o)
			if err := c.Login(context.Background(), "alice", "pw-alice"); err != nil {
				t.Fatal(err)
			}
			o.PinSHA256 = "sha256:" + strings.ToUpper(hex.EncodeToString(sum[:]))
			s.dial(t, o)

			for _, wrong := range []client.Options{
				{PinSHA256: "sha256:" + strings.Repeat("ab", 32)},
				{PinFile: other},
			} {
				o.PinFile, o.PinSHA256 = wrong.PinFile, wrong.PinSHA256
				c, err := client.Dial(context.Background(), o)
				var pe *client.PinError
				if err == nil {
					c.Close()
					t.Fatal("dialed with a wrong pin")
				}
				if !errors.As(err, &pe) || pe.Got != good || !strings.Contains(err.Error(), "does not match the pinned") {
					t.Fatalf("wrong pin: %v", err)
				}
			}
		})
	}
	for _, o := range []client.Options{
		{Server: "127.0.0.1"},
		{Server: "127.0.0.1", PinFile: s.certFile, PinSHA256: good},
		{Server: "127.0.0.1", PinSHA256: "sha1:00"},
		{Server: "127.0.0.1", PinSHA256: "sha256:abcd"},
		{Server: "127.0.0.1", PinFile: filepath.Join(t.TempDir(), "missing.pem")},
	} {
		if c, err := client.Dial(context.Background(), o); err == nil {
			c.Close()
			t.Fatalf("dialed with bad pin options %+v", o)
		}
	}
}

// skipWithoutDHE skips a DHE-only client's test in a build without the
// OpenSSL engine (CGO_ENABLED=0 or -tags nodhe).
func (s *server) skipWithoutDHE(t testing.TB, k kind) {
	if k.dhe && !s.dhe {
		t.Skip("the server was built without DHE support")
	}
}

// otherCert writes a certificate that is not the server's.
func otherCert(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "impostor"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A refused QUIC registration ends the media stream with its refusal code;
// a refused legacy one with the server closing the connection.
func TestRegistrationRefused(t *testing.T) {
	s := startServer(t, core.Config{})
	ctx := context.Background()
	for _, tr := range []client.Transport{client.QUIC, client.QUICDatagram} {
		a, b := s.online(t, "alice", tr), s.online(t, "bob", tr)
		err := a.RegisterAsForTest(ctx, "42", 10*time.Second)
		if r, ok := errors.AsType[transport.Refusal](err); !ok || r != transport.RefuseSession {
			t.Fatalf("%v: unknown session: got %v, want %v", tr, err, transport.RefuseSession)
		}
		err = a.RegisterAsForTest(ctx, b.SessionID(), 10*time.Second)
		if r, ok := errors.AsType[transport.Refusal](err); !ok || r != transport.RefuseOrigin {
			t.Fatalf("%v: another client's session: got %v, want %v", tr, err, transport.RefuseOrigin)
		}
		call(t, a, b) // their own media still work
		exchange(t, a, b, 1)
	}
	a := s.online(t, "carol", client.TCP)
	if err := a.RegisterAsForTest(ctx, "42", 10*time.Second); !errors.Is(err, client.ErrMediaEnded) {
		t.Fatalf("tcp: unknown session: got %v", err)
	}
}

// A QUIC client that moves to a new socket mid-call keeps its call and its
// media.
func TestMigrate(t *testing.T) {
	for _, tr := range []client.Transport{client.QUIC, client.QUICDatagram} {
		t.Run(tr.String(), func(t *testing.T) {
			s := startServer(t, core.Config{})
			a, b := s.online(t, "alice", tr), s.online(t, "bob", client.TCP)
			call(t, a, b)
			exchange(t, a, b, 2)
			if err := a.Migrate(context.Background(), "127.0.0.1"); err != nil {
				t.Fatal(err)
			}
			exchange(t, a, b, 2)
			if err := a.Migrate(context.Background(), "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			exchange(t, a, b, 2)
			noEvent(t, a)
			noEvent(t, b)
			quiet(t, a)
		})
	}
	s := startServer(t, core.Config{})
	if err := s.online(t, "alice", client.TCP).Migrate(context.Background(), "127.0.0.1"); !errors.Is(err, client.ErrNotQUIC) {
		t.Fatalf("tcp migrate: %v", err)
	}
}

func TestClose(t *testing.T) {
	s := startServer(t, core.Config{})
	for _, tr := range []client.Transport{client.TCP, client.QUIC, client.QUICDatagram} {
		a := s.online(t, "alice", tr)
		m := a.Media()
		a.Close()
		a.Close()
		if _, ok := <-a.Events(); ok {
			t.Fatal("events not closed")
		}
		if !errors.Is(a.Err(), client.ErrClosed) {
			t.Fatalf("Err after Close: %v", a.Err())
		}
		if _, err := a.Lookup(context.Background(), "bob"); !errors.Is(err, client.ErrClosed) {
			t.Fatalf("lookup after Close: %v", err)
		}
		if _, err := m.ReadMedia(context.Background()); !errors.Is(err, client.ErrClosed) {
			t.Fatalf("media read after Close: %v", err)
		}
		if err := m.WriteMedia([]byte("x")); !errors.Is(err, client.ErrClosed) {
			t.Fatalf("media write after Close: %v", err)
		}
	}
}

func TestMaxDatagram(t *testing.T) {
	s := startServer(t, core.Config{})
	a := s.online(t, "alice", client.QUICDatagram)
	n := a.Media().MaxDatagram()
	if n < 1000 || n > 65535 {
		t.Fatalf("MaxDatagram %d", n)
	}
	if err := a.Media().WriteMedia(make([]byte, n+1)); err == nil {
		t.Fatal("oversized datagram sent")
	}
	if m := s.online(t, "bob", client.QUIC).Media(); m.MaxDatagram() != 0 || m.Datagram() {
		t.Fatal("stream mode claims datagrams")
	}
}

// Options.LocalAddr picks the address both channels come from.
func TestLocalAddr(t *testing.T) {
	s := startServer(t, core.Config{})
	for _, tr := range []client.Transport{client.TCP, client.QUIC, client.QUICDatagram} {
		o := s.options(tr)
		o.LocalAddr = "127.0.0.2"
		a := s.dial(t, o)
		if err := a.Login(context.Background(), "alice", "pw-alice"); err != nil {
			t.Fatal(err)
		}
		if err := a.RegisterMedia(context.Background()); err != nil {
			t.Fatalf("%v: media from 127.0.0.2: %v", tr, err)
		}
		b := s.online(t, "bob", tr)
		call(t, a, b)
		exchange(t, a, b, 1)
		a.Close()
		b.Close()
	}
}
