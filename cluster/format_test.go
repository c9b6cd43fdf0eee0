package cluster

import (
	"bytes"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dtcall/dtcall/cluster/natstest"
	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/wire"
)

// kvKey is what a JetStream key may be.
var kvKey = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)

func TestUserKey(t *testing.T) {
	for _, u := range []string{"", "alice", "a.b", "..", "*", ">", "a b", "ü", "x\x00y", strings.Repeat("z", 300), "\xff\xfe"} {
		k := userKey(u)
		if !kvKey.MatchString(k) || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") {
			t.Errorf("userKey(%q) = %q: not a valid key", u, k)
		}
		if back, ok := keyUser(k); !ok || back != u {
			t.Errorf("keyUser(userKey(%q)) = %q %v", u, back, ok)
		}
	}
	for _, k := range []string{"", "x", "uA", "u====", "u+/"} {
		if u, ok := keyUser(k); ok {
			t.Errorf("keyUser(%q) = %q, want failure", k, u)
		}
	}
}

func TestNodeID(t *testing.T) {
	id := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	for _, name := range []string{"web-1", "host.example.com", "", "ü*>", strings.Repeat("n", 100)} {
		n, err := New(Config{URLs: "nats://127.0.0.1:1", Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if !id.MatchString(n.Node()) || !validID(n.Node()) {
			t.Errorf("name %q: id %q", name, n.Node())
		}
		if name == "web-1" && !regexp.MustCompile(`^web-1-[0-9a-f]{6}$`).MatchString(n.Node()) {
			t.Errorf("id %q", n.Node())
		}
		n.Close()
	}
	a, _ := New(Config{URLs: "127.0.0.1:1", Name: "same"})
	b, _ := New(Config{URLs: "127.0.0.1:1", Name: "same"})
	defer a.Close()
	defer b.Close()
	if a.Node() == b.Node() {
		t.Errorf("two processes of one name share the id %q", a.Node())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{},
		{URLs: " , "},
		{URLs: "nats://127.0.0.1:1", CertFile: "c.pem"},
		{URLs: "nats://127.0.0.1:1", Heartbeat: time.Second, NodeTimeout: time.Second},
		{URLs: "nats://user:pa%zz@127.0.0.1:1"},
	} {
		if n, err := New(c); err == nil {
			n.Close()
			t.Errorf("New(%+v) succeeded", c)
		} else if strings.Contains(err.Error(), "pa%zz") {
			t.Errorf("error quotes a password: %v", err)
		}
	}
}

// TestNoPasswordInLogs connects with credentials in the URL through an
// outage and checks that no log line carries the password.
func TestNoPasswordInLogs(t *testing.T) {
	srv := natstest.StartServer(t)
	var logs bytes.Buffer
	h := slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})
	url := strings.Replace(srv.URL(), "nats://", "nats://dtuser:s3cr3t-pw@", 1)
	n, err := New(Config{URLs: url + ", " + url, Name: "creds", Log: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(n.urls, "s3cr3t") || n.cfg.User != "dtuser" || n.cfg.Password != "s3cr3t-pw" {
		t.Fatalf("urls %q, user %q", n.urls, n.cfg.User)
	}
	c := newFakeCore()
	n.Start(c)
	waitFor(t, 5*time.Second, "synced", func() bool { return n.Stats().Synced })
	srv.Stop()
	waitFor(t, 5*time.Second, "disconnected", func() bool { return n.Stats().Conn == "reconnecting" })
	srv.Restart(false)
	waitFor(t, 5*time.Second, "synced again", func() bool { return n.Stats().Synced })
	n.Close()
	out := logs.String()
	for _, want := range []string{"nats connected", "nats disconnected", "nats reconnected"} {
		if strings.Count(out, want) != 1 {
			t.Errorf("log has %q %d times, want once:\n%s", want, strings.Count(out, want), out)
		}
	}
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("a log line carries the password:\n%s", out)
	}
}

func TestPresenceRoundTrip(t *testing.T) {
	for _, p := range []presence{{"a", 1}, {"node-abc123", wire.MaxSessionID}, {strings.Repeat("x", 64), 42}} {
		got, err := decodePresence(encodePresence(p))
		if err != nil || got != p {
			t.Errorf("round trip of %+v: %+v %v", p, got, err)
		}
	}
	for _, s := range []string{"", "1", "1 a", "1 a 0", "1 a 01", "2 a 1", "1 a.b 1", "1 a 1 ", "1  a 1", "1 a 9223372036854775808", "1 a +1", "1 a 1x"} {
		if p, err := decodePresence([]byte(s)); err == nil {
			t.Errorf("decodePresence(%q) = %+v", s, p)
		}
	}
}

func TestSignalRoundTrip(t *testing.T) {
	for _, s := range []core.Signal{
		{Kind: core.SigRing, Call: 1, From: 2, FromUser: "alice", ToUser: "bob"},
		{Kind: core.SigRingResult, Call: 1<<64 - 1, From: 2, To: 3, Notice: wire.SubBusy},
		{Kind: core.SigNotice, Call: 7, From: wire.MaxSessionID, To: 1, FromUser: "ü", ToUser: strings.Repeat("b", maxSigField), Notice: "call|drop"},
	} {
		b := encodeSignal("node-1", s)
		from, got, err := decodeSignal(b)
		if err != nil || from != "node-1" || got != s {
			t.Errorf("round trip of %+v: %q %+v %v", s, from, got, err)
		}
	}
	if validSignal("node-1", core.Signal{Kind: 0}) || validSignal("no.de", core.Signal{Kind: core.SigRing}) ||
		validSignal("n", core.Signal{Kind: core.SigRing, Notice: strings.Repeat("x", maxSigField+1)}) {
		t.Error("validSignal accepts an invalid signal")
	}
	good := encodeSignal("n", core.Signal{Kind: core.SigRing, FromUser: "a"})
	for i := range good {
		if _, _, err := decodeSignal(good[:i]); err == nil {
			t.Errorf("a %d-byte prefix decodes", i)
		}
	}
	if _, _, err := decodeSignal(append(good, 0)); err == nil {
		t.Error("a trailing byte decodes")
	}
}

// FuzzDecodePresence: the decoder never panics, accepts only canonical
// values (encode(decode(b)) == b), and decode(encode(x)) == x.
func FuzzDecodePresence(f *testing.F) {
	f.Add([]byte("1 web-1-a1b2c3 42"))
	f.Add([]byte("1 x 9223372036854775807"))
	f.Add([]byte("1 x 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePresence(b)
		if err != nil {
			return
		}
		if !validID(p.Node) || p.Session == 0 || p.Session > wire.MaxSessionID {
			t.Fatalf("decoded an invalid entry %+v", p)
		}
		enc := encodePresence(p)
		if !bytes.Equal(enc, b) {
			t.Fatalf("not canonical: %q decodes to %+v, encodes to %q", b, p, enc)
		}
		if q, err := decodePresence(enc); err != nil || q != p {
			t.Fatalf("round trip of %+v: %+v %v", p, q, err)
		}
	})
}

// FuzzDecodeSignal: the decoder never panics, accepts only canonical
// messages (encode(decode(b)) == b), decode(encode(x)) == x, and a valid
// message cut in two pieces does not decode from its first piece.
func FuzzDecodeSignal(f *testing.F) {
	f.Add(encodeSignal("web-1-a1b2c3", core.Signal{Kind: core.SigRing, Call: 99, From: 5, FromUser: "alice", ToUser: "bob"}))
	f.Add(encodeSignal("n", core.Signal{Kind: core.SigNotice, Call: 1, From: 2, To: 3, Notice: "call|end"}))
	f.Add([]byte{1, 4, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		from, s, err := decodeSignal(b)
		if err != nil {
			return
		}
		if !validSignal(from, s) {
			t.Fatalf("decoded an invalid signal %q %+v", from, s)
		}
		enc := encodeSignal(from, s)
		if !bytes.Equal(enc, b) {
			t.Fatalf("not canonical: %x encodes back to %x", b, enc)
		}
		from2, s2, err := decodeSignal(enc)
		if err != nil || from2 != from || s2 != s {
			t.Fatalf("round trip of %+v: %+v %v", s, s2, err)
		}
		for cut := range len(b) {
			if _, _, err := decodeSignal(b[:cut]); err == nil {
				t.Fatalf("the first %d of %d bytes decode", cut, len(b))
			}
		}
	})
}
