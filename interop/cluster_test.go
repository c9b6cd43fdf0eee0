package interop

// A cluster from outside: a real nats-server process (built from its
// module, the go.mod tool) and two dtoperator processes joined through it,
// one users file and one certificate (one service name behind a
// balancer), with the Java agents and a Go QUIC datagram agent calling
// across the nodes, Java agents whose media connections land on the other
// node than their commands, then one node SIGKILLed in a call while a
// call local to the other goes on.

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/dtcall/dtcall/client"
)

// natsBuild is the nats-server binary, built once per test binary into
// sharedBuilds' folder.
var natsBuild struct {
	once sync.Once
	bin  string
	err  error
}

// natsServerBin builds github.com/nats-io/nats-server/v2 (a tool of
// go.mod) the first time it is called, and returns its path.
func natsServerBin(t *testing.T) string {
	t.Helper()
	sharedBuilds(t) // shared.dir and shared.root
	natsBuild.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		natsBuild.bin = filepath.Join(shared.dir, "nats-server")
		build := exec.CommandContext(ctx, "go", "build", "-o", natsBuild.bin, "github.com/nats-io/nats-server/v2")
		build.Dir = shared.root
		if out, err := build.CombinedOutput(); err != nil {
			natsBuild.err = fmt.Errorf("go build nats-server: %v\n%s", err, out)
		}
	})
	if natsBuild.err != nil {
		t.Fatal(natsBuild.err)
	}
	return natsBuild.bin
}

// startNATS runs nats-server with JetStream on a free loopback port until
// the end of t, waits until it answers, and returns its URL.
func startNATS(t *testing.T, bin, dir string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := freePorts(t, 1)[0]
		ctx, cancel := context.WithTimeout(context.Background(), serverTimeout)
		out := &output{}
		cmd := exec.CommandContext(ctx, bin, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-js",
			"-sd", filepath.Join(dir, fmt.Sprintf("nats-store-%d", attempt)))
		cmd.Stdout, cmd.Stderr = out, out
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatalf("start nats-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { // owned by the cleanup, which waits for exited
			cmd.Wait()
			close(exited)
		}()
		t.Cleanup(func() {
			cancel()
			<-exited
			if t.Failed() {
				t.Logf("nats-server:\n%s", indent(out.String()))
			}
		})
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if err := waitNATS(addr, exited, 10*time.Second); err == nil {
			return "nats://" + addr
		} else if attempt == 3 {
			t.Fatalf("nats-server on %s: %v\n%s", addr, err, out)
		}
		cancel()
	}
}

// waitNATS waits up to d until a NATS server on addr sends its INFO line.
func waitNATS(addr string, exited <-chan struct{}, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		select {
		case <-exited:
			return fmt.Errorf("exited")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "INFO ") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no INFO within %v (%v)", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clusterFamilies are README.md's dtcall_cluster_* families, exported by a
// node of a cluster only.
var clusterFamilies = func() []family {
	counter, gauge := dto.MetricType_COUNTER, dto.MetricType_GAUGE
	return []family{
		one("dtcall_cluster_calls_active", gauge, ""),
		one("dtcall_cluster_media_frames_total", counter, "direction", "in", "out"),
		one("dtcall_cluster_media_bytes_total", counter, "direction", "in", "out"),
		one("dtcall_cluster_media_dropped_total", counter, "reason", "slow_consumer", "no_connection", "lost_node"),
		one("dtcall_cluster_signals_total", counter, "direction", "in", "out"),
		one("dtcall_cluster_signals_dropped_total", counter, "reason", "no_connection", "lost_node"),
		one("dtcall_cluster_nats_connected", gauge, ""),
		one("dtcall_cluster_nats_reconnects_total", counter, ""),
		one("dtcall_cluster_presence_entries", gauge, "scope", "local", "all"),
		one("dtcall_cluster_nodes_alive", gauge, ""),
		one("dtcall_cluster_nodes_lost_total", counter, ""),
	}
}()

// waitMetric waits up to d until ok(the value of name{labels}) on s.
func waitMetric(t *testing.T, s *server, d time.Duration, ok func(float64) bool, name string, labels ...string) float64 {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v := scrape(t, s).value(t, name, labels...)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v after %v", name, labels, v, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func atLeast(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }
func exactly(n float64) func(float64) bool { return func(v float64) bool { return v == n } }

// clusterAgent is one agent of the cluster test, logged in on a node.
type clusterAgent struct {
	agent
	user, sid, kind string
}

// TestClusterInterop: nodes a and b on one nats-server.
//   - android2017 (DHE) on a calls java-default on b, media both ways, and
//     the other way round;
//   - a Go QUIC datagram client on b calls java-default on a;
//   - Java agents whose media connections are on the other node than their
//     command connections (android2017 and java-default with commands on a
//     and media on b, java-default with commands on b and media on a) run
//     the interop matrix's scenarios across the nodes, both ways: every
//     reply and every frame as on one node;
//   - with a call up between a user on a and one on b, and a call local to
//     a (Go TCP and QUIC clients, media both ways), b is SIGKILLed: the
//     party on a is told call|drop within fastFail; the local call goes
//     on, every frame in order and no gap over maxMediaGap; a forgets b
//     and its users; the user of b logs in on a at once and is called
//     there.
func TestClusterInterop(t *testing.T) {
	t.Parallel()
	jdk := needJDK(t)
	bin, _ := sharedBuilds(t)
	natsBin := natsServerBin(t)
	dir := t.TempDir()
	classes := compileClient(t, jdk, dir)
	var accts []account
	for _, n := range []string{"ca", "cb", "ga", "gb", "la", "lb", "sa", "sb", "sc", "pa", "pb", offline} {
		accts = append(accts, newAccount(n))
	}
	users := writeUsers(t, bin, dir, accts)
	cert, key := writeCert(t, dir, "server")
	natsURL := startNATS(t, natsBin, dir)
	files := func(name string) serverFiles {
		return serverFiles{cert: cert, key: key, users: users, logs: filepath.Join(dir, "logs-"+name), metrics: true,
			conf: filepath.Join(dir, name+".conf"), extra: []string{"nats = " + natsURL, "node = " + name, "drain = 2s"}}
	}
	a := startOpServer(t, bin, dir, files("a"))
	b := startOpServer(t, bin, dir, files("b"))
	for _, s := range []*opServer{a, b} {
		t.Logf("ready: node=%s", logValue(t, consoleLines(s.server, "dtoperator ready")[0], "node"))
		waitMetric(t, s.server, 10*time.Second, exactly(1), "dtcall_cluster_nodes_alive")
	}
	envs := map[*opServer]*matrixEnv{}
	// hosts[s] has its agents' command and media connections on s;
	// splitHosts[s] has the command connections on s and the media
	// connections on the other node, as a balancer without affinity may.
	hosts, splitHosts := map[*opServer]*javaHost{}, map[*opServer]*javaHost{}
	other := map[*opServer]*opServer{a: b, b: a}
	for _, s := range []*opServer{a, b} {
		envs[s] = &matrixEnv{srv: s.server, certFile: cert, java: jdk.java, classes: classes, accts: accts,
			goTLS: map[goTransport]string{}, javaTLS: map[string]string{}}
		split := &matrixEnv{srv: &server{cmdPort: s.cmdPort, mediaPort: other[s].mediaPort},
			certFile: cert, java: jdk.java, classes: classes, accts: accts}
		for _, h := range []struct {
			env *matrixEnv
			m   map[*opServer]*javaHost
		}{{envs[s], hosts}, {split, splitHosts}} {
			jh, err := startJavaHost(h.env)
			if err != nil {
				t.Fatal(err)
			}
			h.m[s] = jh
			t.Cleanup(func() {
				if why := jh.stop(); why != "" {
					t.Errorf("java agent host: %s", why)
				}
			})
		}
	}
	// loginVia makes an agent of kind (a Java profile of host h, or
	// "go-dgram") whose command connection is on s, and waits until every
	// live node has its presence entry.
	entries, live := 0.0, []*opServer{a, b}
	top := t // agents live to the end of the test; the hosts stop after them
	loginVia := func(t *testing.T, s *opServer, h *javaHost, kind, user string) *clusterAgent {
		t.Helper()
		var ag agent
		if kind == "go-dgram" {
			ag = envs[s].newGoAgent(goDatagram)
		} else {
			var err error
			if ag, err = h.newAgent(kind); err != nil {
				t.Fatal(err)
			}
		}
		top.Cleanup(ag.close)
		sid, err := ag.do("login " + user + " " + envs[s].password(user))
		if err != nil {
			t.Fatalf("%s (%s) logs in: %v", user, kind, err)
		}
		entries++
		for _, n := range live { // every node sees it before anyone calls it
			waitMetric(t, n.server, 5*time.Second, atLeast(entries), "dtcall_cluster_presence_entries", "scope", "all")
		}
		return &clusterAgent{agent: ag, user: user, sid: sid, kind: kind}
	}
	login := func(t *testing.T, s *opServer, kind, user string) *clusterAgent {
		t.Helper()
		return loginVia(t, s, hosts[s], kind, user)
	}
	// logout closes agents and waits until every live node has dropped
	// their entries.
	logout := func(t *testing.T, ags ...*clusterAgent) {
		t.Helper()
		for _, ag := range ags {
			ag.close()
		}
		entries -= float64(len(ags))
		for _, n := range live {
			waitMetric(t, n.server, 5*time.Second, exactly(entries), "dtcall_cluster_presence_entries", "scope", "all")
		}
	}

	t.Run("java_across_nodes", func(t *testing.T) {
		ca := login(t, a, "android2017", "ca")
		cb := login(t, b, "java-default", "cb")
		if got, err := ca.do("tls"); err != nil || got != "TLSv1.2 "+suiteDHE {
			t.Errorf("android2017 on a negotiated %q, %v; want TLSv1.2 %s", got, err, suiteDHE)
		}
		crossCall(t, ca, cb)
		crossCall(t, cb, ca)
	})
	t.Run("go_datagram_to_java", func(t *testing.T) {
		gb := login(t, b, "go-dgram", "gb")
		ga := login(t, a, "java-default", "ga")
		crossCall(t, gb, ga)
	})
	t.Run("split_media_across_nodes", func(t *testing.T) {
		// sa and sc: command on a, media on b; sb: command on b, media on a.
		sa := loginVia(t, a, splitHosts[a], "android2017", "sa")
		sb := loginVia(t, b, splitHosts[b], "java-default", "sb")
		sc := loginVia(t, a, splitHosts[a], "java-default", "sc")
		defer logout(t, sa, sb, sc)
		if got, err := sa.do("tls"); err != nil || got != "TLSv1.2 "+suiteDHE {
			t.Errorf("android2017 (command on a, media on b) negotiated %q, %v; want TLSv1.2 %s on both", got, err, suiteDHE)
		}
		const bound = "media registered for a session of another node"
		waitConsole(t, b.server, bound, 2, time.Second) // sa's and sc's
		waitConsole(t, a.server, bound, 1, time.Second) // sb's
		// Every scenario of the matrix with the callee on the other node
		// and every party's media on the other node than its commands:
		// the agents check each reply as on one node. peer-killed kills
		// the callee, so it runs last, once.
		splitScenarios(t, &pairRun{a: sa, b: sb, c: sc}, scenarios[:len(scenarios)-1])
		splitScenarios(t, &pairRun{a: sb, b: sa, c: sc}, scenarios)
	})
	before := scrape(t, a.server)
	checkFamilies(t, before)
	checkFamilyList(t, before, clusterFamilies)
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"dtcall_cluster_media_frames_total", []string{"direction", "in"}, 3 * frames},
		{"dtcall_cluster_media_frames_total", []string{"direction", "out"}, 3 * frames},
		{"dtcall_cluster_signals_total", []string{"direction", "in"}, 3},
		{"dtcall_cluster_signals_total", []string{"direction", "out"}, 3},
		{"dtcall_cluster_nats_connected", nil, 1},
	} {
		if v := before.value(t, c.name, c.labels...); v < c.min {
			t.Errorf("a: %s%v = %v, want at least %v", c.name, c.labels, v, c.min)
		}
	}

	t.Run("node_lost", func(t *testing.T) {
		la := login(t, a, "android2017", "la")
		lb := login(t, b, "java-default", "lb")
		p := &pairRun{a: la, b: lb, users: [3]string{la.user, lb.user}}
		s := &script{}
		call(s, p, 0, 1)
		accept(s, p, 0, 1)
		talk(s, p, 0, 1, frames)
		if s.err != nil {
			t.Fatal(s.err)
		}
		waitMetric(t, a.server, time.Second, exactly(1), "dtcall_cluster_calls_active")
		// A call local to a, media both ways, through b's death.
		pin := pinFile(cert)
		pa := online(t, a, client.TCP, pin, account{"pa", envs[a].password("pa")})
		pb := online(t, a, client.QUIC, pin, account{"pb", envs[a].password("pb")})
		entries += 2
		for _, n := range live {
			waitMetric(t, n.server, 5*time.Second, atLeast(entries), "dtcall_cluster_presence_entries", "scope", "all")
		}
		startCall(t, pa, pb)
		media := startMedia(t, pa, pb)
		time.Sleep(500 * time.Millisecond)

		killed := time.Now()
		if err := b.cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		converged := make(chan convergence, 1)
		go func() { converged <- watchConvergence(a.server, killed, failBound) }() // ends within failBound
		if _, err := la.do(fmt.Sprintf("expect call|drop|%s %d", la.sid, failBound.Milliseconds())); err != nil {
			t.Fatalf("la on a after b was killed: %v", err)
		}
		told := time.Since(killed)
		t.Logf("node b SIGKILLed in a call: its peer on a told call|drop %v later", told.Round(time.Millisecond))
		if told > fastFail {
			t.Errorf("la was told call|drop %v after node b died, want within %v", told.Round(time.Millisecond), fastFail)
		}
		lb.close()
		// b's sessions (cb, gb, lb) are gone; a's stale copies of their
		// entries may linger a moment, which only makes waits shorter.
		entries, live = 5, []*opServer{a} // ca, ga, la, pa, pb
		// lb logs in on a at once and is called there.
		relogged := time.Now()
		lb2 := login(t, a, "java-default", "lb")
		t.Logf("lb logged in again on a %v after the drop", time.Since(relogged).Round(time.Millisecond))
		s.do(p, 0, "", "reregister")
		if s.err != nil {
			t.Fatal(s.err)
		}
		crossCall(t, la, lb2)

		c := <-converged
		if c.err != nil {
			t.Error(c.err)
		} else {
			t.Logf("presence convergence after b's SIGKILL: a counts no node alive %v later, "+
				"and none of b's users' entries %v later", c.alive.Round(time.Millisecond), c.entries.Round(time.Millisecond))
		}
		// The local call has gone on through the loss and the clean-up of
		// b's entries; a second more, then every frame must have arrived.
		time.Sleep(time.Until(killed.Add(c.entries + time.Second)))
		for _, w := range media.finish(t) {
			t.Logf("local call on a through b's SIGKILL: %s→%s %d frames, all in order; longest gap %v since the kill, %v over the call",
				w.from, w.to, w.sent, w.longestGap(killed, time.Now()).Round(time.Millisecond),
				w.longestGap(time.Time{}, time.Now()).Round(time.Millisecond))
		}
		noEvents(t, pa)
		noEvents(t, pb)
		hangUpCall(t, pa, pb)
		m := scrape(t, a.server)
		if v := m.value(t, "dtcall_cluster_nodes_lost_total"); v != 1 {
			t.Errorf("a: dtcall_cluster_nodes_lost_total = %v, want 1", v)
		}
		if v := m.value(t, "dtcall_cluster_nodes_alive"); v != 0 {
			t.Errorf("a: dtcall_cluster_nodes_alive = %v, want 0", v)
		}
		if v := m.value(t, "dtcall_calls_ended_total", "reason", "drop"); v < 1 {
			t.Errorf(`a: dtcall_calls_ended_total{reason="drop"} = %v, want 1`, v)
		}
	})
	a.stop(t)
	var names, secrets []string
	for _, ac := range accts {
		names, secrets = append(names, ac.name), append(secrets, ac.password)
	}
	checkLogs(t, filepath.Join(dir, "logs-a"), a.console.String(), names, secrets)
}

// convergence is how long after another node's SIGKILL a node stopped
// counting it alive (alive), and then counted none of its users' presence
// entries (entries); err says what it still counted after the wait.
type convergence struct {
	alive, entries time.Duration
	err            error
}

// watchConvergence polls s's /metrics from since, for up to d, until
// dtcall_cluster_nodes_alive is 0 and dtcall_cluster_presence_entries
// counts s's own sessions only (all = local).
func watchConvergence(s *server, since time.Time, d time.Duration) convergence {
	var c convergence
	var last string
	for {
		m, err := fetchMetrics(s)
		if err == nil {
			alive := gaugeValue(m, "dtcall_cluster_nodes_alive")
			all := gaugeValue(m, "dtcall_cluster_presence_entries", "scope", "all")
			local := gaugeValue(m, "dtcall_cluster_presence_entries", "scope", "local")
			at := time.Since(since)
			if c.alive == 0 && alive == 0 {
				c.alive = at
			}
			if c.alive != 0 && all == local {
				c.entries = at
				return c
			}
			last = fmt.Sprintf("nodes_alive %v, presence entries all %v, local %v", alive, all, local)
		} else {
			last = err.Error()
		}
		if time.Since(since) > d {
			c.err = fmt.Errorf("%v after the kill, %s: %s", d, s.metricsAddr, last)
			return c
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gaugeValue is the value of gauge name{labels} in m, or NaN.
func gaugeValue(m metricSet, name string, labels ...string) float64 {
	for _, s := range m[name].GetMetric() {
		ok := s.Gauge != nil
		for i := 0; i+1 < len(labels); i += 2 {
			ok = ok && labelValue(s, labels[i]) == labels[i+1]
		}
		if ok {
			return s.Gauge.GetValue()
		}
	}
	return math.NaN()
}

// splitScenarios runs scs in order for p, whose agents are clusterAgents,
// until the first failure, and logs the row of results.
func splitScenarios(t *testing.T, p *pairRun, scs []scenario) {
	t.Helper()
	ags := [3]*clusterAgent{p.a.(*clusterAgent), p.b.(*clusterAgent), p.c.(*clusterAgent)}
	for i, ag := range ags {
		p.users[i], p.sids[i] = ag.user, ag.sid
	}
	head := fmt.Sprintf("split media, %s (%s) → %s (%s), third party %s (%s):",
		ags[0].user, ags[0].kind, ags[1].user, ags[1].kind, ags[2].user, ags[2].kind)
	row := head
	defer func() { t.Log(row) }()
	for _, sc := range scs {
		s := &script{}
		sc.run(s, p)
		if s.err != nil {
			row += " " + sc.name + " ✗"
			t.Errorf("%s %s: %v", head, sc.name, s.err)
			return
		}
		row += " " + sc.name + " ✓"
	}
}

// crossCall: x calls y, y accepts, frames both ways, x hangs up; both are
// quiet and register new media.
func crossCall(t *testing.T, x, y *clusterAgent) {
	t.Helper()
	p := &pairRun{a: x, b: y, users: [3]string{x.user, y.user}}
	s := &script{}
	call(s, p, 0, 1)
	accept(s, p, 0, 1)
	talk(s, p, 0, 1, frames)
	hangUp(s, p, 0, 1)
	quiet(s, p, 0, 1)
	reregister(s, p, 0, 1)
	if s.err != nil {
		t.Errorf("%s (%s) calls %s (%s) across the nodes: %v", x.user, x.kind, y.user, y.kind, s.err)
	}
}
