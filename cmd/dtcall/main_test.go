package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/internal/testserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// These tests run the CLI's run function, not a subprocess, against an
// in-process server with both fronts on 127.0.0.1.

type server struct {
	commandPort, mediaPort, quicPort int
	certFile                         string
	der                              []byte // the leaf, for pins
}

func startServer(t *testing.T) *server {
	t.Helper()
	return startServerWith(t, testserver.Config{})
}

func startServerWith(t *testing.T, cfg testserver.Config) *server {
	t.Helper()
	ts := testserver.Start(t, cfg)
	return &server{
		commandPort: ts.CommandPort, mediaPort: ts.MediaPort, quicPort: ts.QUICPort,
		certFile: ts.Cert.CertFile, der: ts.Cert.DER,
	}
}

// args is a dtcall command line for user over transport ("tcp", "quic" or
// "datagram") against s, pinned by the certificate file.
func (s *server) args(transport, user string, rest ...string) []string {
	return s.argsChecked(transport, user, []string{"--pin", s.certFile}, rest...)
}

// argsChecked is args with check (--pin or --ca flags) instead of the
// file pin.
func (s *server) argsChecked(transport, user string, check []string, rest ...string) []string {
	a := []string{
		"--server", "127.0.0.1",
		"--command-port", strconv.Itoa(s.commandPort),
		"--media-port", strconv.Itoa(s.mediaPort),
		"--quic-port", strconv.Itoa(s.quicPort),
		"--user", user,
	}
	a = append(a, check...)
	switch transport {
	case "tcp":
		a = append(a, "--transport", "tcp")
	case "datagram":
		a = append(a, "--datagram")
	}
	return append(a, rest...)
}

// buffer is an output a test can watch while run writes to it.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor waits until the output contains s.
func (b *buffer) waitFor(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(b.String(), s) {
			return
		}
	}
	t.Fatalf("output %q never said %q", b.String(), s)
}

// proc is one run of the CLI in a goroutine.
type proc struct {
	out, errs *buffer
	cancel    context.CancelFunc // Ctrl-C
	code      chan int
}

func (s *server) start(t *testing.T, password string, args ...string) *proc {
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{out: &buffer{}, errs: &buffer{}, cancel: cancel, code: make(chan int, 1)}
	e := env{stdout: p.out, stderr: p.errs, getenv: func(k string) string {
		if k == "DTCALL_PASSWORD" {
			return password
		}
		return ""
	}}
	go func() { p.code <- run(ctx, args, e) }()
	t.Cleanup(func() { cancel(); <-p.code })
	return p
}

// wait waits for the run to end and checks its exit code and output.
func (p *proc) wait(t *testing.T, code int, says ...string) {
	t.Helper()
	select {
	case got := <-p.code:
		p.code <- got // for the cleanup
		if got != code {
			t.Fatalf("exit code %d, want %d; stdout %q, stderr %q", got, code, p.out, p.errs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running; stdout %q, stderr %q", p.out, p.errs)
	}
	all := p.out.String() + p.errs.String()
	for _, s := range says {
		if !strings.Contains(all, s) {
			t.Fatalf("output %q does not say %q", all, s)
		}
	}
}

// The acceptance test: one CLI answers and records, the other calls and
// plays a file; the recording equals the file. Every transport pairing.
func TestPlayAndRecord(t *testing.T) {
	for _, pair := range [][2]string{
		{"tcp", "tcp"}, {"quic", "quic"}, {"datagram", "datagram"},
		{"tcp", "quic"}, {"datagram", "tcp"}, {"quic", "datagram"},
	} {
		t.Run(pair[0]+"-calls-"+pair[1], func(t *testing.T) {
			t.Parallel()
			s := startServer(t)
			dir := t.TempDir()
			in, out := filepath.Join(dir, "voice.amr"), filepath.Join(dir, "heard.amr")
			voice := make([]byte, 50*frameSize+7) // a second of frames and a short last one
			rand.Read(voice)
			if err := os.WriteFile(in, voice, 0o600); err != nil {
				t.Fatal(err)
			}
			bob := s.start(t, "pw-bob", s.args(pair[1], "bob", "answer", "--record", out)...)
			bob.out.waitFor(t, "waiting for a call")
			alice := s.start(t, "pw-alice", s.args(pair[0], "alice", "call", "bob", "--play", in)...)
			alice.wait(t, exitOK, "ringing bob", "bob answered", "end of "+in, "hung up")
			bob.wait(t, exitOK, "alice is calling; answering", "the call with alice is up",
				"alice hung up", "recorded 1607 bytes")
			heard, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(heard, voice) {
				t.Fatalf("recorded %d bytes differ from the %d played", len(heard), len(voice))
			}
		})
	}
}

// online logs a client-package peer in, for the CLI to call.
func (s *server) online(t *testing.T, user string) *client.Client {
	t.Helper()
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Options{
		Server: "127.0.0.1", QUICPort: s.quicPort, Transport: client.QUIC, PinFile: s.certFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(ctx, user, "pw-"+user); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterMedia(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func nextEvent(t *testing.T, c *client.Client, kind client.EventKind) client.Event {
	t.Helper()
	select {
	case ev := <-c.Events():
		if ev.Kind != kind {
			t.Fatalf("%s: event %v, want %v", c.User(), ev, kind)
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no %v event", c.User(), kind)
	}
	return client.Event{}
}

// Every way a call can go, with the message a person sees and the exit
// code.
func TestCallOutcomes(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	call := func(extra ...string) *proc {
		return s.start(t, "pw-alice", s.args("quic", "alice", append([]string{"call", "bob"}, extra...)...)...)
	}

	t.Run("not available", func(t *testing.T) {
		call().wait(t, exitNoCall, "bob is not available (offline or unknown)")
	})
	t.Run("busy", func(t *testing.T) {
		s.start(t, "pw-alice", s.args("tcp", "alice", "call", "alice")...).wait(t, exitNoCall, "alice is busy")
	})
	bob := s.online(t, "bob")
	t.Run("rejected", func(t *testing.T) {
		p := call()
		nextEvent(t, bob, client.Incoming)
		if err := bob.Reject(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		p.wait(t, exitNoCall, "bob rejected the call")
	})
	t.Run("not answered", func(t *testing.T) {
		call("--ring", "300ms").wait(t, exitNoCall, "bob did not answer within 300ms")
		nextEvent(t, bob, client.Incoming)
		nextEvent(t, bob, client.TimedOut)
	})
	t.Run("cancelled while ringing", func(t *testing.T) {
		p := call()
		p.out.waitFor(t, "ringing bob")
		nextEvent(t, bob, client.Incoming)
		p.cancel()
		p.wait(t, exitInterrupted, "cancelled")
		nextEvent(t, bob, client.Ended)
	})
	answer := func(t *testing.T) *proc {
		p := call()
		nextEvent(t, bob, client.Incoming)
		if err := bob.Accept(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		nextEvent(t, bob, client.Started)
		p.out.waitFor(t, "the call is up")
		return p
	}
	t.Run("peer hangs up", func(t *testing.T) {
		p := answer(t)
		if err := bob.End(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		p.wait(t, exitOK, "bob hung up")
		bob.RegisterMedia(ctx)
	})
	t.Run("ctrl-c hangs up", func(t *testing.T) {
		p := answer(t)
		p.cancel()
		p.wait(t, exitInterrupted, "hung up")
		nextEvent(t, bob, client.Ended)
		bob.RegisterMedia(ctx)
	})
	t.Run("dropped", func(t *testing.T) {
		p := answer(t)
		bob.Close()
		p.wait(t, exitDropped, "the call dropped (the other side lost its connection)")
	})
}

func TestLoginLookupAnswer(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	t.Run("lookup", func(t *testing.T) {
		s.start(t, "pw-alice", s.args("quic", "alice", "lookup", "bob")...).wait(t, exitOK, "bob exists")
		s.start(t, "pw-alice", s.args("tcp", "alice", "lookup", "zed")...).wait(t, exitNoCall, "zed does not exist")
	})
	t.Run("wrong password", func(t *testing.T) {
		for _, tr := range []string{"tcp", "quic"} {
			s.start(t, "wrong", s.args(tr, "alice", "lookup", "bob")...).
				wait(t, exitLogin, "login refused: wrong user name or password, or a stale clock")
		}
	})
	t.Run("wrong pin", func(t *testing.T) {
		a := append(s.args("quic", "alice", "lookup", "bob"), "--pin", "sha256:"+strings.Repeat("00", 32))
		s.start(t, "pw-alice", a...).wait(t, exitError, "does not match the pinned")
	})
	t.Run("login prints events", func(t *testing.T) {
		p := s.start(t, "pw-alice", s.args("tcp", "alice", "login")...)
		p.out.waitFor(t, "online")
		bob := s.online(t, "bob")
		if res, err := bob.Call(ctx, "alice"); err != nil || res != client.Available {
			t.Fatal(res, err)
		}
		p.out.waitFor(t, "bob is calling")
		if err := bob.Timeout(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		p.out.waitFor(t, "bob gave up calling")
		p.cancel()
		p.wait(t, exitOK)
	})
	t.Run("answer gives up", func(t *testing.T) {
		s.start(t, "pw-carol", s.args("datagram", "carol", "answer", "--wait", "200ms")...).
			wait(t, exitNoCall, "no call within 200ms")
	})
}

func TestUsage(t *testing.T) {
	s := startServer(t)
	for _, tt := range []struct {
		name     string
		password string
		args     []string
		code     int
		says     string
	}{
		{"no command", "pw", s.args("quic", "alice"), exitUsage, "no command"},
		{"unknown command", "pw", s.args("quic", "alice", "dance"), exitUsage, `unknown command "dance"`},
		{"lookup without name", "pw", s.args("quic", "alice", "lookup"), exitUsage, "lookup takes 1 argument"},
		{"datagram over tcp", "pw", append(s.args("tcp", "alice", "login"), "--datagram"), exitUsage, "--datagram needs --transport quic"},
		{"bad transport", "pw", append(s.args("quic", "alice", "login"), "--transport", "udp"), exitUsage, `"udp": want quic or tcp`},
		{"no server", "pw", []string{"--pin", "x", "--user", "a", "login"}, exitUsage, "--server is required"},
		{"no pin", "pw", []string{"--server", "h", "--user", "a", "login"}, exitUsage, "--pin or --ca is required"},
		{"play with lookup", "pw", s.args("quic", "alice", "lookup", "bob", "--play", "f"), exitUsage, "--play and --record go with call and answer"},
		{"missing play file", "pw", s.args("quic", "alice", "call", "bob", "--play", "/nonexistent"), exitUsage, "--play: open /nonexistent"},
		{"no password", "", s.args("quic", "alice", "login"), exitUsage, "no password: set DTCALL_PASSWORD or run dtcall in a terminal"},
		{"no user", "pw", []string{"--server", "h", "--pin", "x", "login"}, exitUsage, "no user name"},
		{"help", "pw", []string{"--help"}, exitOK, "usage: dtcall"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s.start(t, tt.password, tt.args...).wait(t, tt.code, tt.says)
		})
	}
}
