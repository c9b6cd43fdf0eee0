package interop

import (
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/internal/testcert"
)

// TestRestartOnSamePorts: an upgrade with reuse_port. dtoperator A runs;
// a TCP client and a QUIC client are in a call, media flowing both ways.
// B starts on the same ports and data folder; A gets SIGTERM and drains.
// New clients (TCP and QUIC) log in: they land on B (B's dtcall_sessions
// counts them, A's does not). The call on A goes on for 2 s more, every
// frame in order and no gap over maxMediaGap, then hangs up; A exits 0,
// and B serves on.
func TestRestartOnSamePorts(t *testing.T) {
	t.Parallel()
	bin, _ := sharedBuilds(t)
	cert := testcert.Write(t)
	pin := pinFile(cert.CertFile)
	dir := t.TempDir()
	ra, rb, rc, rd := newAccount("ua"), newAccount("ub"), newAccount("uc"), newAccount("ud")
	users := writeUsers(t, bin, dir, []account{ra, rb, rc, rd})
	data := filepath.Join(dir, "data")
	files := func(name string, ports []int) serverFiles {
		return serverFiles{users: users, cert: cert.CertFile, key: cert.KeyFile, metrics: true,
			logs: filepath.Join(dir, "logs-"+name), conf: filepath.Join(dir, name+".conf"), ports: ports,
			extra: []string{"reuse_port = true", "data = " + data}}
	}
	a := startOpServer(t, bin, dir, files("a", nil))
	waitConsole(t, a.server, "steering=1", 1, time.Second)
	caller := online(t, a, client.TCP, pin, ra)
	callee := online(t, a, client.QUIC, pin, rb)
	startCall(t, caller, callee)
	media := startMedia(t, caller, callee)
	time.Sleep(500 * time.Millisecond)

	metricsPort := freePorts(t, 1)[0]
	b := startOpServer(t, bin, dir, files("b", []int{a.cmdPort, a.mediaPort, metricsPort}))
	joined := time.Now()
	waitConsole(t, b.server, "steering=2", 1, time.Second)
	term := a.signal(t, syscall.SIGTERM)
	waitStatus(t, a.server, "/readyz", http.StatusServiceUnavailable, atOnce)
	waitConsole(t, a.server, "calls_left=1", 1, atOnce)

	newTCP := online(t, b, client.TCP, pin, rc)
	newQUIC := online(t, b, client.QUIC, pin, rd)
	mb, ma := scrape(t, b.server), scrape(t, a.server)
	for _, front := range []string{"tcp", "quic"} {
		if got := mb.value(t, "dtcall_sessions", "front", front); got != 1 {
			t.Errorf(`B: dtcall_sessions{front=%q} = %v, want 1 (the new client)`, front, got)
		}
		if got := ma.value(t, "dtcall_sessions", "front", front); got != 1 {
			t.Errorf(`A (draining): dtcall_sessions{front=%q} = %v, want 1 (its party in the call)`, front, got)
		}
	}
	if got := ma.value(t, "dtcall_calls_active"); got != 1 {
		t.Errorf("A: dtcall_calls_active = %v, want 1", got)
	}

	time.Sleep(2 * time.Second) // the call goes on on A
	a.mustRun(t)
	for _, w := range media.finish(t) {
		t.Logf("%s→%s: %d frames, all in order; longest gap %v over the whole call, %v since B joined "+
			"(B joined %v into the call, SIGTERM to A %v after that)", w.from, w.to, w.sent,
			w.longestGap(time.Time{}, time.Now()).Round(time.Millisecond),
			w.longestGap(joined, time.Now()).Round(time.Millisecond),
			joined.Sub(media.begin).Round(time.Millisecond), term.Sub(joined).Round(time.Millisecond))
	}
	noEvents(t, caller)
	noEvents(t, callee)
	hung := time.Now()
	hangUpCall(t, caller, callee)
	exit := a.waitExit(t, hung, 10*time.Second)
	t.Logf("A exited 0 %v after the hang-up, %v after SIGTERM", exit.Round(time.Millisecond),
		time.Since(term).Round(time.Millisecond))

	// B serves on: its clients, and a new one over each front.
	b.mustRun(t)
	noEvents(t, newTCP)
	noEvents(t, newQUIC)
	newTCP.Close()
	newQUIC.Close()
	for _, tr := range []client.Transport{client.TCP, client.QUIC} {
		if err := tryLogin(b.server, tr, pin, rc); err != nil {
			t.Errorf("log in over %v after A exited: %v", tr, err)
		}
	}
	if n := len(consoleLines(a.server, "dtoperator ready")); n != 1 || strings.Contains(b.console.String(), " ERR ") {
		t.Errorf("A ready %d times; B's errors:\n%s", n, strings.Join(consoleLines(b.server, " ERR "), ""))
	}
	b.stop(t)
}

// TestRestartInCluster: the same upgrade on a node of a cluster. A (node
// n1, reuse_port, joined to a real nats-server) has a TCP user; B, the new
// process of n1 (same ports, data folder and name), starts, and a QUIC
// user logs in on it (QUIC's new connections go to the new process). The
// two call: a call between the old and the new process, across nodes.
// A drains on SIGTERM; the call goes on, media both ways and in order,
// for 2 s, then hangs up; A exits 0.
func TestRestartInCluster(t *testing.T) {
	t.Parallel()
	bin, _ := sharedBuilds(t)
	cert := testcert.Write(t)
	pin := pinFile(cert.CertFile)
	dir := t.TempDir()
	natsURL := startNATS(t, natsServerBin(t), dir)
	ra, rb := newAccount("ua"), newAccount("ub")
	users := writeUsers(t, bin, dir, []account{ra, rb})
	data := filepath.Join(dir, "data")
	files := func(name string, ports []int) serverFiles {
		return serverFiles{users: users, cert: cert.CertFile, key: cert.KeyFile, metrics: true,
			logs: filepath.Join(dir, "logs-"+name), conf: filepath.Join(dir, name+".conf"), ports: ports,
			extra: []string{"reuse_port = true", "data = " + data, "nats = " + natsURL, "node = n1"}}
	}
	a := startOpServer(t, bin, dir, files("a", nil))
	caller := online(t, a, client.TCP, pin, ra)
	metricsPort := freePorts(t, 1)[0]
	b := startOpServer(t, bin, dir, files("b", []int{a.cmdPort, a.mediaPort, metricsPort}))
	waitConsole(t, b.server, "steering=2", 1, time.Second)
	waitMetric(t, a.server, 5*time.Second, exactly(1), "dtcall_cluster_nodes_alive")
	callee := online(t, b, client.QUIC, pin, rb)
	waitMetric(t, a.server, 5*time.Second, exactly(2), "dtcall_cluster_presence_entries", "scope", "all")
	startCall(t, caller, callee)
	for _, s := range []*opServer{a, b} {
		waitMetric(t, s.server, 5*time.Second, exactly(1), "dtcall_cluster_calls_active")
	}
	media := startMedia(t, caller, callee)
	time.Sleep(500 * time.Millisecond)

	term := a.signal(t, syscall.SIGTERM)
	waitStatus(t, a.server, "/readyz", http.StatusServiceUnavailable, atOnce)
	time.Sleep(2 * time.Second) // the cross-node call goes on while A drains
	a.mustRun(t)
	for _, w := range media.finish(t) {
		t.Logf("%s→%s: %d frames, all in order; longest gap %v since SIGTERM", w.from, w.to, w.sent,
			w.longestGap(term, time.Now()).Round(time.Millisecond))
	}
	noEvents(t, caller)
	noEvents(t, callee)
	hung := time.Now()
	hangUpCall(t, caller, callee)
	exit := a.waitExit(t, hung, 10*time.Second)
	t.Logf("A exited 0 %v after the hang-up", exit.Round(time.Millisecond))
	b.mustRun(t)
	if err := tryLogin(b.server, client.TCP, pin, ra); err != nil {
		t.Errorf("log in on B after A exited: %v", err)
	}
	b.stop(t)
}
