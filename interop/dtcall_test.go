package interop

// Black-box tests of cmd/dtcall against a dtoperator process: long file
// calls, exit codes. The helpers here (rig, proc) also serve
// liveness_test.go and longcall_test.go.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	procTimeout = 4 * time.Minute       // the whole life of one dtcall process
	lineTimeout = 30 * time.Second      // for a dtcall to print what it does next
	upTimeout   = 30 * time.Second      // for a call to be up on both sides
	fastFail    = 3 * time.Second       // the contract: a lost party or server is noticed this fast
	failBound   = 12 * time.Second      // how long a test waits for it before calling it missing
	framePace   = 20 * time.Millisecond // 50 frames a second
)

// rig is what a test of this file shares between its servers: the two
// binaries, a certificate and a users file.
type rig struct {
	dtoperatorBin string
	dtcallBin     string
	cert, key     string
	users         string
	accts         map[string]account
}

// shared are dtoperator and dtcall, built once for every test that asks
// (sharedBuilds), so that all of them run the same sources and the
// machine links each binary once. TestMain removes them.
var shared struct {
	once sync.Once
	dir  string
	root string
	bins map[string]string
	err  error
}

// sharedBuilds builds cmd/dtoperator and cmd/dtcall, the first time it
// is called, into a folder that TestMain removes, and returns their paths.
func sharedBuilds(t *testing.T) (dtoperator, dtcall string) {
	t.Helper()
	shared.once.Do(func() {
		if shared.root, shared.err = moduleRoot(); shared.err != nil {
			return
		}
		if shared.dir, shared.err = os.MkdirTemp("", "dtcall-interop-"); shared.err != nil {
			return
		}
		shared.bins = map[string]string{}
		for _, name := range []string{"dtoperator", "dtcall"} {
			if shared.bins[name], shared.err = goBuild(shared.root, shared.dir, name); shared.err != nil {
				return
			}
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	noteSources(t, shared.root)
	return shared.bins["dtoperator"], shared.bins["dtcall"]
}

// removeSharedBuilds removes what sharedBuilds built, if it ran.
func removeSharedBuilds() {
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
}

// newRig has dtoperator and dtcall built and makes an account for each name.
func newRig(t *testing.T, names ...string) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{accts: map[string]account{}}
	r.dtoperatorBin, r.dtcallBin = sharedBuilds(t)
	var accts []account
	for _, n := range names {
		a := account{n, "pw-" + rand.Text()}
		accts = append(accts, a)
		r.accts[n] = a
	}
	r.users = writeUsers(t, r.dtoperatorBin, dir, accts)
	r.cert, r.key = writeCert(t, dir, "server")
	return r
}

// server starts a dtoperator process of its own for t, in a folder of its
// own; t's cleanup kills it. Its console is logged if t fails.
func (r *rig) server(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	srv := startServer(t, r.dtoperatorBin, dir, serverFiles{cert: r.cert, key: r.key, users: r.users, logs: filepath.Join(dir, "logs")})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dtoperator console:\n%s", srv.console)
		}
	})
	return srv
}

func (r *rig) acct(name string) account {
	a, ok := r.accts[name]
	if !ok {
		panic("no account " + name)
	}
	return a
}

// proc is a running dtcall process.
type proc struct {
	name    string // for messages: "alice (datagram)"
	cmd     *exec.Cmd
	out     *output // stdout and stderr, interleaved
	cancel  context.CancelFunc
	exited  chan struct{} // closed once Wait returned
	exitAt  time.Time     // set before exited is closed
	waitErr error         // set before exited is closed
}

// output collects a process's output; it is safe for concurrent use.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// transportFlags are dtcall's flags for tr: "tcp", "quic" (stream mode)
// or "datagram".
func transportFlags(tr string) []string {
	switch tr {
	case "tcp":
		return []string{"--transport", "tcp"}
	case "quic":
		return []string{"--transport", "quic"}
	case "datagram":
		return []string{"--transport", "quic", "--datagram"}
	}
	panic("unknown transport " + tr)
}

// dtcall starts dtcall as user a over tr against srv with the command
// line rest (a command and its flags); the password goes in
// DTCALL_PASSWORD. t's cleanup kills it if it still runs and waits for it,
// and logs its output if t failed.
func (r *rig) dtcall(t *testing.T, srv *server, tr string, a account, rest ...string) *proc {
	t.Helper()
	return r.dtcallEnv(t, srv, tr, a.name, a.password, rest...)
}

func (r *rig) dtcallEnv(t *testing.T, srv *server, tr, user, password string, rest ...string) *proc {
	t.Helper()
	args := []string{"--server", "127.0.0.1", "--pin", r.cert, "--user", user,
		"--command-port", strconv.Itoa(srv.cmdPort), "--media-port", strconv.Itoa(srv.mediaPort),
		"--quic-port", strconv.Itoa(srv.cmdPort)} // the QUIC front defaults to the command port
	args = append(append(args, transportFlags(tr)...), rest...)
	return startProc(t, fmt.Sprintf("%s (%s)", user, tr), r.dtcallBin, dtcallEnv(password), args...)
}

// dtcallEnv is the test's environment without DTCALL_* and DTOPERATOR_*
// settings, with DTCALL_PASSWORD=password unless it is empty.
func dtcallEnv(password string) []string {
	var env []string
	for _, kv := range cleanEnv() {
		if !strings.HasPrefix(kv, "DTCALL_") {
			env = append(env, kv)
		}
	}
	if password != "" {
		env = append(env, "DTCALL_PASSWORD="+password)
	}
	return env
}

func startProc(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), procTimeout)
	p := &proc{name: name, out: &output{}, cancel: cancel, exited: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { // owned by p: the cleanup waits for exited
		p.waitErr = p.cmd.Wait()
		p.exitAt = time.Now()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cancel() // kills it if it still runs
		<-p.exited
		if t.Failed() {
			t.Logf("%s: %s\n%s", p.name, p.status(), indent(p.out.String()))
		}
	})
	return p
}

func indent(s string) string {
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// status says how p ended, or that it runs.
func (p *proc) status() string {
	select {
	case <-p.exited:
	default:
		return "still running"
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("ended by signal %d (%v)", int(ws.Signal()), ws.Signal())
	}
	return fmt.Sprintf("exit %d", p.cmd.ProcessState.ExitCode())
}

// code is p's exit code once it exited, -1 if a signal ended it.
func (p *proc) code() int { return p.cmd.ProcessState.ExitCode() }

// waitLine waits until p has printed s. It fails t if p exits first or
// does not print it within d.
func (p *proc) waitLine(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(p.out.String(), s) {
			return
		}
		select {
		case <-p.exited:
			if strings.Contains(p.out.String(), s) {
				return
			}
			t.Fatalf("%s ended (%s) before it printed %q:\n%s", p.name, p.status(), s, indent(p.out.String()))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %q within %v:\n%s", p.name, s, d, indent(p.out.String()))
		}
	}
}

// waitExit waits up to d for p to exit and reports whether it did.
func (p *proc) waitExit(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// signal sends sig to p and returns when it was sent.
func (p *proc) signal(t *testing.T, sig syscall.Signal) time.Time {
	t.Helper()
	at := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: send %v: %v", p.name, sig, err)
	}
	return at
}

// mustExit waits for p to exit within d of since and checks its exit code
// and that its output contains each of want. It returns how long p took
// from since.
func (p *proc) mustExit(t *testing.T, since time.Time, d time.Duration, code int, want ...string) time.Duration {
	t.Helper()
	if !p.waitExit(time.Until(since.Add(d))) {
		t.Errorf("%s still runs %v after it should have ended (want exit %d)", p.name, d, code)
		return -1
	}
	took := p.exitAt.Sub(since)
	if got := p.status(); got != fmt.Sprintf("exit %d", code) {
		t.Errorf("%s: %s after %v, want exit %d", p.name, got, took.Round(time.Millisecond), code)
	}
	out := p.out.String()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s: its output does not say %q", p.name, w)
		}
	}
	return took
}

// dtcall's messages (cmd/dtcall) the tests wait for or expect.
const (
	msgWaiting = "waiting for a call"
	msgHungUp  = "hung up"
)

// msgUpAnswerer and msgUpCaller are what the answering and the calling
// dtcall print once the call with peer is up.
func msgUpAnswerer(peer string) string { return "the call with " + peer + " is up" }
func msgUpCaller(peer string) string   { return peer + " answered; the call is up" }

// randomFile writes n random bytes to dir/name.
func randomFile(t *testing.T, dir, name string, n int) string {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// sameFile checks that file got holds exactly what file want does.
func sameFile(t *testing.T, what, got, want string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(g, w) {
		t.Logf("%s: %d bytes, byte for byte what was played", what, len(g))
		return
	}
	i := 0
	for i < len(g) && i < len(w) && g[i] == w[i] {
		i++
	}
	t.Errorf("%s: recorded %d bytes, played %d (%d frames of 32 bytes); they differ from byte %d (frame %d) on",
		what, len(g), len(w), (len(w)+31)/32, i, i/32)
}

// ---------------------------------------------------------------- long file calls

// fileCallBytes is 40 s of media: 2,000 frames of 32 bytes at 50 a second.
const fileCallBytes = 64_000

// TestDatagramFileCall40s: two dtcall processes in QUIC datagram mode hold
// a 40-s call, each playing 64,000 random bytes and recording what comes;
// both exit 0 and each recording is byte for byte what the other played.
// (The server used to close a datagram-mode media channel after ~30 s.)
func TestDatagramFileCall40s(t *testing.T) {
	t.Parallel()
	fileCall(t, "datagram")
}

// TestStreamFileCall40s is TestDatagramFileCall40s in QUIC stream mode.
func TestStreamFileCall40s(t *testing.T) {
	t.Parallel()
	fileCall(t, "quic")
}

func fileCall(t *testing.T, tr string) {
	r := newRig(t, "fa", "fb")
	srv := r.server(t)
	dir := t.TempDir()
	// Both files are equally long, so both sides reach their end at about
	// the same moment; the first then lingers 500 ms (dtcall's default)
	// and hangs up, and the other side's recorder drains.
	playA := randomFile(t, dir, "A.bin", fileCallBytes)
	playB := randomFile(t, dir, "B.bin", fileCallBytes)
	heardA, heardB := filepath.Join(dir, "heardA.bin"), filepath.Join(dir, "heardB.bin")

	a := r.dtcall(t, srv, tr, r.acct("fa"), "answer", "--play", playA, "--record", heardA)
	a.waitLine(t, msgWaiting, lineTimeout)
	b := r.dtcall(t, srv, tr, r.acct("fb"), "call", "fa", "--play", playB, "--record", heardB)
	b.waitLine(t, msgUpCaller("fa"), upTimeout)
	a.waitLine(t, msgUpAnswerer("fb"), upTimeout)
	up := time.Now()

	// 40 s of playing, the linger, the drain; a call that dies early
	// shows as an early exit.
	bound := 40*time.Second + 20*time.Second
	tookA := a.mustExit(t, up, bound, 0)
	tookB := b.mustExit(t, up, bound, 0)
	t.Logf("the call was up for %.1f s (answerer) and %.1f s (caller) after both said it was up",
		tookA.Seconds(), tookB.Seconds())
	if tookA < 0 || tookB < 0 { // a recording is not complete
		return
	}
	sameFile(t, "heardA.bin (what the answerer recorded) vs B.bin", heardA, playB)
	sameFile(t, "heardB.bin (what the caller recorded) vs A.bin", heardB, playA)
	for _, p := range []*proc{a, b} {
		if d := p.exitAt.Sub(up); d < 39*time.Second {
			t.Errorf("%s ended %.1f s into a 40-s call", p.name, d.Seconds())
		}
	}
}

// ---------------------------------------------------------------- exit codes

// TestDtcallExitCodes runs dtcall processes for each exit code of the
// README: 1 error (a certificate that is not the pinned one), 2 usage,
// 3 login refused, 4 no call (offline callee, unknown user), and 130 for
// Ctrl-C (SIGINT) while waiting for a call and in the middle of a call,
// over every transport; the other party of an interrupted call is told
// the call ended and exits 0.
func TestDtcallExitCodes(t *testing.T) {
	t.Parallel()
	names := []string{"xa", "xoff"}
	trs := []string{"tcp", "quic", "datagram"}
	for _, tr := range trs {
		names = append(names, "xc"+tr, "xd"+tr, "xe"+tr, "xf"+tr, "xg"+tr)
	}
	r := newRig(t, names...)
	srv := r.server(t)
	otherCert, _ := writeCert(t, t.TempDir(), "other")
	a := r.acct("xa")

	t.Run("usage_2", func(t *testing.T) {
		p := r.dtcall(t, srv, "quic", a) // no command
		p.mustExit(t, time.Now(), lineTimeout, 2)
		p = r.dtcall(t, srv, "tcp", a, "--datagram", "login") // --datagram needs quic
		p.mustExit(t, time.Now(), lineTimeout, 2)
	})
	t.Run("error_1", func(t *testing.T) {
		for _, tr := range trs {
			args := []string{"--server", "127.0.0.1", "--pin", otherCert, "--user", a.name,
				"--command-port", strconv.Itoa(srv.cmdPort), "--media-port", strconv.Itoa(srv.mediaPort),
				"--quic-port", strconv.Itoa(srv.cmdPort)}
			p := startProc(t, a.name+" ("+tr+", wrong pin)", r.dtcallBin, dtcallEnv(a.password),
				append(append(args, transportFlags(tr)...), "lookup", "xoff")...)
			p.mustExit(t, time.Now(), lineTimeout, 1)
		}
	})
	t.Run("login_refused_3", func(t *testing.T) {
		for _, tr := range trs {
			p := r.dtcallEnv(t, srv, tr, a.name, "wrong-"+a.password, "lookup", "xoff")
			p.mustExit(t, time.Now(), lineTimeout, 3)
		}
	})
	t.Run("no_call_4", func(t *testing.T) {
		for _, tr := range trs {
			p := r.dtcall(t, srv, tr, a, "call", "xoff")
			p.mustExit(t, time.Now(), lineTimeout, 4, "xoff is not available")
			p = r.dtcall(t, srv, tr, a, "lookup", "nosuchuser")
			p.mustExit(t, time.Now(), lineTimeout, 4, "nosuchuser does not exist")
		}
	})
	for _, tr := range trs {
		t.Run("ctrl_c_waiting_130_"+tr, func(t *testing.T) {
			t.Parallel()
			p := r.dtcall(t, srv, tr, r.acct("xc"+tr), "answer")
			p.waitLine(t, msgWaiting, lineTimeout)
			p.mustExit(t, p.signal(t, syscall.SIGINT), lineTimeout, 130)
		})
		// The caller is interrupted in one run, the answerer in the other.
		for _, who := range []string{"caller", "answerer"} {
			t.Run("ctrl_c_mid_call_130_"+who+"_"+tr, func(t *testing.T) {
				t.Parallel()
				ans, cal := "xd"+tr, "xe"+tr
				if who == "answerer" {
					ans, cal = "xf"+tr, "xg"+tr
				}
				a := r.dtcall(t, srv, tr, r.acct(ans), "answer")
				a.waitLine(t, msgWaiting, lineTimeout)
				c := r.dtcall(t, srv, tr, r.acct(cal), "call", ans)
				c.waitLine(t, msgUpCaller(ans), upTimeout)
				a.waitLine(t, msgUpAnswerer(cal), upTimeout)
				hurt, other, hurtName := c, a, cal
				if who == "answerer" {
					hurt, other, hurtName = a, c, ans
				}
				at := hurt.signal(t, syscall.SIGINT)
				took := hurt.mustExit(t, at, lineTimeout, 130)
				otherTook := other.mustExit(t, at, lineTimeout, 0, hurtName+" "+msgHungUp)
				t.Logf("Ctrl-C: the %s exited after %v, the other side after %v",
					who, took.Round(time.Millisecond), otherTook.Round(time.Millisecond))
			})
		}
	}
}
