package interop

// The matrix runs every scenario once for every caller→callee pair of client
// kinds, in the style of the QUIC interop runner: Go clients (package
// client) over TCP, QUIC stream mode and QUIC datagram mode, and the Java
// client in agent mode with the android2017 and java-default profiles.
// Each scenario is written once, against agent, a phone that takes
// one-line commands.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// kind is a client kind of the matrix.
type kind struct {
	name  string // as in the table's legend
	short string // in the table's header
	java  string // the Java profile, or "" for a Go client
	goTr  goTransport
}

var kinds = []kind{
	{name: "go-tcp", short: "T", goTr: goTCP},
	{name: "go-quic", short: "Q", goTr: goQUIC},
	{name: "go-dgram", short: "G", goTr: goDatagram},
	{name: "android2017", short: "A", java: "android2017"},
	{name: "java-default", short: "J", java: "java-default"},
}

// scenario is one row of the matrix. A scenario starts and ends with
// every agent of the pair logged in, media registered, idle.
type scenario struct {
	name string
	run  func(s *script, p *pairRun)
}

// scenarios run in this order; peer-killed must come last, it kills the callee.
var scenarios = []scenario{
	{"login", scLogin},
	{"lookup", scLookup},
	{"call-accept-media", scCallAcceptMedia},
	{"reject", scReject},
	{"end-reregister", scEndReregister},
	{"timeout", scTimeout},
	{"busy", scBusy},
	{"notavailable", scNotAvailable},
	{"jbyte", scJbyte},
	{"peer-killed", scPeerKilled},
}

const (
	matrixWorkers = 2      // pairs run at the same time, each with its own users
	frames        = 10     // media frames each way in a call
	expectMS      = "5000" // how long to wait for a notification
	offline       = "dave" // an account that never logs in
	nobody        = "nosuchuser"
)

// matrixAccounts are the users of the matrix: per worker a caller, a callee
// and a third party, and the offline user.
func matrixAccounts() []account {
	var accts []account
	for w := range matrixWorkers {
		for _, role := range []string{"a", "b", "c"} {
			accts = append(accts, account{fmt.Sprintf("m%d%s", w, role), "pw-" + rand.Text()})
		}
	}
	return append(accts, account{offline, "pw-" + rand.Text()})
}

// agent is one phone of the matrix. Do runs one command ("call bob") and
// returns its result, or an error if the agent reports a failure.
type agent interface {
	do(cmd string) (string, error)
	close()
}

// pairRun is one caller→callee pair: its agents and its cells.
type pairRun struct {
	caller, callee kind
	a, b, c        agent // caller, callee, third party (callee's kind)
	users          [3]string
	passwords      [3]string
	sids           [3]string
	env            *matrixEnv
	host           *javaHost // this worker's JVM
	result         map[string]string
	tls            map[string]string // kind name → what its agent negotiated
	took           time.Duration
	slow           []string        // commands that took more than a second
	spans          map[string]span // scenario → when it ran
}

func (p *pairRun) label() string { return p.caller.short + "→" + p.callee.short }

// script runs a scenario's commands until the first failure, which it keeps.
type script struct{ err error }

// do runs cmd on agent who (0 caller, 1 callee, 2 third party) and checks
// that the result is want ("*" for any result).
func (s *script) do(p *pairRun, who int, want, cmd string) string {
	if s.err != nil {
		return ""
	}
	ag := []agent{p.a, p.b, p.c}[who]
	begin := time.Now()
	got, err := ag.do(cmd)
	if d := time.Since(begin); d > time.Second && !strings.HasPrefix(cmd, "expect") {
		p.slow = append(p.slow, fmt.Sprintf("%s %q took %.1f s", p.users[who], strings.Fields(cmd)[0], d.Seconds()))
	}
	switch {
	case err != nil:
		s.err = fmt.Errorf("%s %q: %v", p.users[who], cmd, err)
	case want != "*" && got != want:
		s.err = fmt.Errorf("%s %q: got %q, want %q", p.users[who], cmd, got, want)
	}
	return got
}

// Shorthands for the scenarios.
func (p *pairRun) u(who int) string { return p.users[who] }

func call(s *script, p *pairRun, from, to int) {
	s.do(p, from, "available", "call "+p.u(to))
	s.do(p, to, "", "expect ring|incoming|"+p.u(from)+" "+expectMS)
}

func accept(s *script, p *pairRun, caller, callee int) {
	s.do(p, callee, "", "accept "+p.u(caller))
	s.do(p, caller, "", "expect call|start|"+p.u(callee)+" "+expectMS)
	s.do(p, callee, "", "expect call|start|"+p.u(caller)+" "+expectMS)
}

func hangUp(s *script, p *pairRun, from, to int) {
	s.do(p, from, "", "end "+p.u(to))
	s.do(p, to, "", "expect call|end|"+p.u(from)+" "+expectMS)
}

func talk(s *script, p *pairRun, x, y, n int) {
	s.do(p, x, "", fmt.Sprintf("media-send %s %d", p.u(y), n))
	s.do(p, y, "", fmt.Sprintf("media-send %s %d", p.u(x), n))
	s.do(p, y, "", fmt.Sprintf("media-expect %s %d", p.u(x), n))
	s.do(p, x, "", fmt.Sprintf("media-expect %s %d", p.u(y), n))
}

func quiet(s *script, p *pairRun, who ...int) {
	for _, w := range who {
		s.do(p, w, "", "quiet")
	}
}

func reregister(s *script, p *pairRun, who ...int) {
	for _, w := range who {
		s.do(p, w, "", "reregister")
	}
}

// scLogin checks the logins of the pair's set-up: three distinct sessions.
func scLogin(s *script, p *pairRun) {
	if p.sids[0] == p.sids[1] || p.sids[1] == p.sids[2] || p.sids[0] == p.sids[2] {
		s.err = fmt.Errorf("two sessions share an id: %v", p.sids)
	}
	quiet(s, p, 0, 1, 2)
}

func scLookup(s *script, p *pairRun) {
	s.do(p, 0, "exists", "lookup "+p.u(1))
	s.do(p, 0, "exists", "lookup "+offline)
	s.do(p, 0, "doesntexist", "lookup "+nobody)
	s.do(p, 1, "exists", "lookup "+p.u(0))
}

func scCallAcceptMedia(s *script, p *pairRun) {
	call(s, p, 0, 1)
	accept(s, p, 0, 1)
	talk(s, p, 0, 1, frames)
	hangUp(s, p, 0, 1)
	quiet(s, p, 0, 1)
	reregister(s, p, 0, 1)
}

func scReject(s *script, p *pairRun) {
	call(s, p, 0, 1)
	s.do(p, 1, "", "reject "+p.u(0))
	s.do(p, 0, "", "expect call|reject|"+p.u(1)+" "+expectMS)
	quiet(s, p, 0, 1)
	call(s, p, 0, 1) // both are idle again; the caller cancels
	hangUp(s, p, 0, 1)
	quiet(s, p, 0, 1)
}

// scEndReregister: the callee hangs up, both register new media, and the
// next call's media flows over the new channels.
func scEndReregister(s *script, p *pairRun) {
	call(s, p, 0, 1)
	accept(s, p, 0, 1)
	talk(s, p, 0, 1, frames/2)
	hangUp(s, p, 1, 0)
	reregister(s, p, 0, 1)
	call(s, p, 0, 1)
	accept(s, p, 0, 1)
	talk(s, p, 0, 1, frames)
	hangUp(s, p, 0, 1)
	quiet(s, p, 0, 1)
	reregister(s, p, 0, 1)
}

func scTimeout(s *script, p *pairRun) {
	call(s, p, 0, 1)
	s.do(p, 0, "", "timeout "+p.u(1))
	s.do(p, 1, "", "expect ring|timeout|"+p.u(0)+" "+expectMS)
	quiet(s, p, 0, 1)
	call(s, p, 1, 0) // the other way round
	s.do(p, 1, "", "timeout "+p.u(0))
	s.do(p, 0, "", "expect ring|timeout|"+p.u(1)+" "+expectMS)
	quiet(s, p, 0, 1)
}

func scBusy(s *script, p *pairRun) {
	call(s, p, 0, 1)
	s.do(p, 2, "busy", "call "+p.u(1)) // ringing callee
	s.do(p, 2, "busy", "call "+p.u(0)) // ringing caller
	accept(s, p, 0, 1)
	s.do(p, 2, "busy", "call "+p.u(0)) // in a call
	s.do(p, 2, "busy", "call "+p.u(1))
	s.do(p, 2, "busy", "call "+p.u(2)) // oneself
	hangUp(s, p, 0, 1)
	quiet(s, p, 0, 1, 2)
	reregister(s, p, 0, 1)
}

func scNotAvailable(s *script, p *pairRun) {
	s.do(p, 0, "notavailable", "call "+nobody)
	s.do(p, 0, "notavailable", "call "+offline)
	s.do(p, 2, "notavailable", "call "+offline)
	quiet(s, p, 0, 1, 2)
}

// scJbyte sends keepalives ("D" on both legacy sockets; on QUIC a D line)
// when idle, ringing and in a call; they must never reach the peer's media.
func scJbyte(s *script, p *pairRun) {
	keep := func() {
		s.do(p, 0, "", "keepalive")
		s.do(p, 1, "", "keepalive")
	}
	keep()
	call(s, p, 0, 1)
	keep()
	accept(s, p, 0, 1)
	keep()
	s.do(p, 0, "", fmt.Sprintf("media-send %s %d", p.u(1), frames))
	keep()
	s.do(p, 1, "", fmt.Sprintf("media-expect %s %d", p.u(0), frames))
	s.do(p, 1, "", "media-quiet 200")
	s.do(p, 0, "", "media-quiet 200")
	hangUp(s, p, 0, 1)
	quiet(s, p, 0, 1)
	reregister(s, p, 0, 1)
}

// scPeerKilled: the callee's connections die in a call; the caller is told
// call|drop with its own session id.
func scPeerKilled(s *script, p *pairRun) {
	call(s, p, 0, 1)
	accept(s, p, 0, 1)
	s.do(p, 1, "", "kill")
	s.do(p, 0, "", "expect call|drop|"+p.sids[0]+" "+expectMS)
	quiet(s, p, 0, 2)
}

// matrixEnv is what every pair needs.
type matrixEnv struct {
	srv      *server
	certFile string
	java     string
	classes  string
	accts    []account

	mu      sync.Mutex
	goTLS   map[goTransport]string // the Go kinds' probed TLS
	javaTLS map[string]string      // Java profile → first negotiated
}

func runMatrix(t *testing.T, env *matrixEnv) {
	start := time.Now()
	var pairs []*pairRun
	for _, caller := range kinds {
		for _, callee := range kinds {
			pairs = append(pairs, &pairRun{caller: caller, callee: callee, env: env,
				result: map[string]string{}, tls: map[string]string{}, spans: map[string]span{}})
		}
	}
	work := make(chan *pairRun)
	var wg sync.WaitGroup
	hosts := make([]*javaHost, matrixWorkers)
	for w := range hosts {
		var err error
		if hosts[w], err = startJavaHost(env); err != nil {
			for _, h := range hosts[:w] {
				h.stop()
			}
			t.Fatal(err)
		}
	}
	for w, host := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if why := host.stop(); why != "" {
					t.Errorf("java agent host %d: %s", w, why)
				}
			}()
			for p := range work {
				p.host = host
				for i, role := range []string{"a", "b", "c"} {
					p.users[i] = fmt.Sprintf("m%d%s", w, role)
					p.passwords[i] = env.password(p.users[i])
				}
				begin := time.Now()
				p.run()
				p.took = time.Since(begin)
				if len(p.slow) > 0 {
					t.Logf("%s→%s: slow commands: %s", p.caller.name, p.callee.name, strings.Join(p.slow, "; "))
				}
			}
		}()
	}
	for _, p := range pairs {
		work <- p
	}
	close(work)
	wg.Wait()

	t.Logf("interop matrix: %d pairs × %d scenarios in %.1f s\n%s",
		len(pairs), len(scenarios), time.Since(start).Seconds(), matrixTable(env, pairs))
	for _, p := range pairs {
		for _, sc := range scenarios {
			if why := p.result[sc.name]; why != "" {
				t.Errorf("%s→%s: %s: %s\nserver console while it ran:\n%s", p.caller.name, p.callee.name, sc.name, why,
					consoleDuring(env.srv.console.String(), p.spans[sc.name]))
			}
		}
		for k, got := range p.tls {
			if k == "android2017" && got != "TLSv1.2 "+suiteDHE {
				t.Errorf("%s→%s: android2017 negotiated %q, want TLSv1.2 %s", p.caller.name, p.callee.name, got, suiteDHE)
			}
		}
	}
}

func (e *matrixEnv) password(user string) string {
	for _, a := range e.accts {
		if a.name == user {
			return a.password
		}
	}
	panic("no account " + user)
}

// run logs the pair's agents in and runs every scenario. After a failure it
// starts over with fresh agents, so that one failure does not spoil the rest.
func (p *pairRun) run() {
	defer p.closeAgents()
	if err := p.online(); err != nil {
		for _, sc := range scenarios {
			p.result[sc.name] = "set-up: " + err.Error()
		}
		return
	}
	p.recordTLS()
	for _, sc := range scenarios {
		s := &script{}
		begin := time.Now()
		sc.run(s, p)
		p.spans[sc.name] = span{begin, time.Now()}
		if s.err == nil {
			p.result[sc.name] = ""
			continue
		}
		p.result[sc.name] = s.err.Error()
		p.closeAgents()
		if err := p.online(); err != nil {
			p.result[sc.name] += "; then set-up: " + err.Error()
			return
		}
	}
}

// online makes the pair's three agents and logs them in with media.
func (p *pairRun) online() error {
	ks := []kind{p.caller, p.callee, p.callee}
	ags := make([]agent, 3)
	for i, k := range ks {
		var err error
		if k.java != "" {
			ags[i], err = p.host.newAgent(k.java)
		} else {
			ags[i] = p.env.newGoAgent(k.goTr)
		}
		if err != nil {
			return err
		}
	}
	p.a, p.b, p.c = ags[0], ags[1], ags[2]
	for i, ag := range ags {
		sid, err := ag.do("login " + p.users[i] + " " + p.passwords[i])
		if err != nil {
			return fmt.Errorf("%s (%s) login: %v", p.users[i], ks[i].name, err)
		}
		p.sids[i] = sid
	}
	return nil
}

func (p *pairRun) closeAgents() {
	for _, ag := range []agent{p.a, p.b, p.c} {
		if ag != nil {
			ag.close()
		}
	}
	p.a, p.b, p.c = nil, nil, nil
}

// recordTLS asks the caller's and callee's agents what they negotiated.
func (p *pairRun) recordTLS() {
	for i, k := range []kind{p.caller, p.callee} {
		got, err := []agent{p.a, p.b}[i].do("tls")
		if err != nil {
			got = "? (" + err.Error() + ")"
		}
		p.tls[k.name] = got
		if k.java != "" {
			p.env.mu.Lock()
			if p.env.javaTLS[k.java] == "" {
				p.env.javaTLS[k.java] = got
			}
			p.env.mu.Unlock()
		}
	}
}

// matrixTable renders scenarios × pairs with ✓ or ✗[n], the reasons as
// numbered notes below, and a legend of the kinds with their TLS.
func matrixTable(env *matrixEnv, pairs []*pairRun) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 1, ' ', 0)
	fmt.Fprint(w, "scenario \\ caller→callee")
	for _, p := range pairs {
		fmt.Fprintf(w, "\t%s", p.label())
	}
	var notes []string
	for _, sc := range scenarios {
		fmt.Fprintf(w, "\n%s", sc.name)
		for _, p := range pairs {
			why, ok := p.result[sc.name]
			switch {
			case !ok:
				fmt.Fprint(w, "\t-")
			case why == "":
				fmt.Fprint(w, "\t✓")
			default:
				notes = append(notes, fmt.Sprintf("[%d] %s→%s %s: %s", len(notes)+1, p.caller.name, p.callee.name, sc.name, why))
				fmt.Fprintf(w, "\t✗%d", len(notes))
			}
		}
	}
	fmt.Fprint(w, "\n(pair run time, s)")
	for _, p := range pairs {
		fmt.Fprintf(w, "\t%.0f", p.took.Seconds())
	}
	w.Flush()
	b.WriteString("\n\nclient kinds and the TLS they negotiated:\n")
	w = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, k := range kinds {
		env.mu.Lock()
		negotiated := env.javaTLS[k.java]
		if k.java == "" {
			negotiated = env.goTLS[k.goTr] + "  (probe with package client's TLS settings)"
		}
		env.mu.Unlock()
		fmt.Fprintf(w, "%s\t%s\t%s\n", k.short, k.name, negotiated)
	}
	w.Flush()
	for _, n := range notes {
		b.WriteString(n + "\n")
	}
	return b.String()
}

// ---------------------------------------------------------------- Java agents

// javaHost is one JVM running LegacyClient --agent, which hosts any number
// of Java agents. Its commands run one at a time.
type javaHost struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout, closed at its end; owned by readLoop
	stderr bytes.Buffer
	done   chan struct{} // closed when the process was waited for

	mu     sync.Mutex
	next   int
	broken error // once a command timed out, the JVM is not trusted
}

// javaCommandTimeout bounds one agent command (each has its own shorter
// socket timeouts in the client).
const javaCommandTimeout = 40 * time.Second

func startJavaHost(env *matrixEnv) (*javaHost, error) {
	h := &javaHost{lines: make(chan string, 16), done: make(chan struct{})}
	h.cmd = exec.Command(env.java, "-cp", env.classes, "LegacyClient", "--agent", "1",
		"--host", "127.0.0.1", "--command", fmt.Sprint(env.srv.cmdPort), "--media", fmt.Sprint(env.srv.mediaPort),
		"--pin", env.certFile)
	h.cmd.Stderr = &h.stderr
	h.cmd.WaitDelay = 5 * time.Second
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start java LegacyClient --agent: %w", err)
	}
	go h.readLoop(stdout)
	return h, nil
}

func (h *javaHost) readLoop(r io.Reader) {
	defer close(h.lines)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		h.lines <- sc.Text()
	}
}

// send runs one line and returns the agent's result.
func (h *javaHost) send(line string) (string, error) { return h.sendWithin(line, javaCommandTimeout) }

// sendWithin is send for a command that may take up to d.
func (h *javaHost) sendWithin(line string, d time.Duration) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.broken != nil {
		return "", h.broken
	}
	if _, err := io.WriteString(h.stdin, line+"\n"); err != nil {
		h.broken = fmt.Errorf("java agent: write: %w", err)
		return "", h.broken
	}
	select {
	case out, ok := <-h.lines:
		switch {
		case !ok:
			h.broken = errors.New("java agent process ended")
			return "", h.broken
		case out == "ok" || strings.HasPrefix(out, "ok "):
			return strings.TrimPrefix(strings.TrimPrefix(out, "ok"), " "), nil
		case strings.HasPrefix(out, "err "):
			return "", errors.New(strings.TrimPrefix(out, "err "))
		}
		h.broken = fmt.Errorf("java agent answered %q", out)
	case <-time.After(d):
		h.broken = fmt.Errorf("java agent: no answer within %v", d)
	}
	return "", h.broken
}

func (h *javaHost) newAgent(profile string) (agent, error) {
	h.mu.Lock()
	h.next++
	id := fmt.Sprintf("j%d", h.next)
	h.mu.Unlock()
	if _, err := h.send(id + " new " + profile); err != nil {
		return nil, err
	}
	return &javaAgent{h: h, id: id}, nil
}

// stop ends the JVM: quit, then kill if it lingers. If a command had
// failed the JVM, it returns why and what the JVM wrote on stderr.
func (h *javaHost) stop() string {
	io.WriteString(h.stdin, "quit\n")
	h.stdin.Close()
	waited := make(chan struct{})
	go func() {
		for range h.lines { // drain, so readLoop ends
		}
		h.cmd.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		<-waited
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.broken != nil { // Wait returned: stderr is complete
		return fmt.Sprintf("%v; its stderr:\n%s", h.broken, h.stderr.String())
	}
	return ""
}

type javaAgent struct {
	h  *javaHost
	id string
}

func (a *javaAgent) do(cmd string) (string, error) { return a.h.send(a.id + " " + cmd) }
func (a *javaAgent) close()                        { a.h.send(a.id + " close") }

// ---------------------------------------------------------------- TLS probes

// probeTLS shakes hands the way package client does for tr (crypto/tls
// defaults over TCP; TLS 1.3 and ALPN dtcall/1 over QUIC) and returns
// "version suite". Package client does not expose its connection state.
func probeTLS(ctx context.Context, srv *server, tr goTransport) string {
	conf := &tls.Config{InsecureSkipVerify: true} // a probe: the pin is checked by the agents
	if tr == goTCP {
		d := tls.Dialer{Config: conf}
		c, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", srv.cmdPort))
		if err != nil {
			return "? (" + err.Error() + ")"
		}
		defer c.Close()
		st := c.(*tls.Conn).ConnectionState()
		return tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)
	}
	return probeQUIC(ctx, srv, conf, tr == goDatagram)
}
