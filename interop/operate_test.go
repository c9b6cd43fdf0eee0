package interop

// Running dtoperator in production, from outside: SIGHUP reloads (the users
// file, the certificate files, log_level) during a call, the metrics and
// health endpoints, the lame-duck drain on SIGTERM, and certificates
// renewed with the same key or issued by a CA. Real processes on loopback,
// real signals, real HTTP scrapes; the parties are package client Clients.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/internal/testcert"
)

const (
	opTimeout     = 10 * time.Second       // one request of a client, one wait for the server
	reloadTimeout = 10 * time.Second       // for a SIGHUP to be applied (its log line)
	maxMediaGap   = 300 * time.Millisecond // the longest silence a party may hear in a call
	atOnce        = 2 * time.Second        // "at once": sessions closed by a drain, a reload
)

// ---------------------------------------------------------------- test 1

// TestReloadDuringCall: a TCP client and a QUIC datagram client are in a
// call, media flowing both ways at 50 frames a second for the whole test,
// and a third user sits logged in. The operator adds a user and removes
// the idle one with "dtoperator user", replaces the certificate files in
// place with a new certificate (new key), sets log_level = debug and sends
// SIGHUP: the new user logs in, the removed one is logged out and refused
// (as is a removed user in another call, whose peer is told call|drop),
// new handshakes over TCP and QUIC present the new certificate, and the
// call goes on without a gap over maxMediaGap, every frame in order, and
// without a notice to either party. Then a broken users file and a second
// SIGHUP: one error line naming the file and the line, nothing changes,
// dtcall_reloads_total counts one ok and one error.
func TestReloadDuringCall(t *testing.T) {
	t.Parallel()
	bin, _ := sharedBuilds(t)
	dir := t.TempDir()
	ra, rb, rc, rd := newAccount("ra"), newAccount("rb"), newAccount("rc"), newAccount("rd")
	re, rf := newAccount("re"), newAccount("rf") // a second call; rf is removed
	files := serverFiles{
		users: writeUsers(t, bin, dir, []account{ra, rb, rc, re, rf}), logs: filepath.Join(dir, "logs"), metrics: true,
		cert: filepath.Join(dir, "live-cert.pem"), key: filepath.Join(dir, "live-key.pem"),
	}
	oldCert, oldKey := writeCert(t, dir, "old")
	newCert, newKey := writeCert(t, dir, "new")
	replaceFile(t, oldKey, files.key)
	replaceFile(t, oldCert, files.cert)
	srv := startOpServer(t, bin, dir, files)

	a := online(t, srv, client.TCP, pinFile(oldCert), ra)
	b := online(t, srv, client.QUICDatagram, pinFile(oldCert), rb)
	c := online(t, srv, client.QUIC, pinFile(oldCert), rc)
	e := online(t, srv, client.TCP, pinFile(oldCert), re)
	f := online(t, srv, client.QUICDatagram, pinFile(oldCert), rf)
	startCall(t, e, f)
	startCall(t, a, b)
	media := startMedia(t, a, b)
	time.Sleep(time.Second) // the call is well under way

	// (a) The operator's edits, then SIGHUP.
	userCmd(t, bin, rd.password+"\n", "add", rd.name, "--users", files.users)
	userCmd(t, bin, "", "remove", rc.name, "--users", files.users)
	userCmd(t, bin, "", "remove", rf.name, "--users", files.users)
	replaceFile(t, newKey, files.key)
	replaceFile(t, newCert, files.cert)
	debugFiles := files
	debugFiles.extra = []string{"log_level = debug"}
	writeConf(t, srv.conf, srv.server, debugFiles)
	if n := len(consoleLines(srv.server, "TLS established")); n != 0 {
		t.Errorf("%d debug lines before log_level = debug", n)
	}
	hup := srv.signal(t, syscall.SIGHUP)
	reloaded := waitConsole(t, srv.server, "INF reloaded", 1, reloadTimeout)
	t.Logf("reloaded %v after SIGHUP: %s", time.Since(hup).Round(time.Millisecond), strings.TrimSpace(reloaded[0]))
	for _, want := range []string{"users=4", "logged_out=2", "log_level=DEBUG"} {
		if !strings.Contains(reloaded[0], want) {
			t.Errorf("the reload's log line does not say %s: %s", want, reloaded[0])
		}
	}

	// (b) The removed user is logged out at once and refused; the new
	// one logs in; new handshakes present the new certificate.
	if err := expectClosed(c, atOnce); err != nil {
		t.Errorf("%s (removed from the users file): %v", rc.name, err)
	} else {
		t.Logf("%s was logged out %v after SIGHUP (%v)", rc.name, time.Since(hup).Round(time.Millisecond), c.Err())
	}
	if err := tryLogin(srv.server, client.TCP, pinFile(newCert), rc); !errors.Is(err, client.ErrRefused) {
		t.Errorf("%s logs in again after its removal: %v, want a refusal", rc.name, err)
	}
	// rf, removed in a call: logged out, and re is told call|drop.
	if ev, err := nextEvent(e, atOnce); err != nil || ev.Kind != client.Dropped || ev.Peer != rf.name || ev.Value != e.SessionID() {
		t.Errorf("%s, in a call with %s (removed): got %v (%s), %v; want call|drop|%s", re.name, rf.name, ev, ev.Value, err, e.SessionID())
	}
	if err := expectClosed(f, atOnce); err != nil {
		t.Errorf("%s (removed from the users file in a call): %v", rf.name, err)
	}
	for _, tr := range []client.Transport{client.TCP, client.QUIC} {
		err := tryDial(srv.server, tr, pinFile(oldCert))
		var pe *client.PinError
		if !errors.As(err, &pe) {
			t.Errorf("%v client pinned to the old certificate after the reload: %v, want a *client.PinError", tr, err)
		} else if fp := certPin(t, newCert); pe.Cert != fp {
			t.Errorf("%v: the server presented %s, want the new certificate %s", tr, pe.Cert, fp)
		}
		if err := tryDial(srv.server, tr, pinFile(newCert)); err != nil {
			t.Errorf("%v client pinned to the new certificate: %v", tr, err)
		}
	}
	d := online(t, srv, client.QUIC, pinFile(newCert), rd)
	if n := len(consoleLines(srv.server, "TLS established")); n == 0 {
		t.Error("no debug line (TLS established) after the reload to log_level = debug")
	}
	time.Sleep(time.Second) // more of the call after the reload

	// (d) A broken users file: nothing changes.
	good, err := os.ReadFile(files.users)
	if err != nil {
		t.Fatal(err)
	}
	badLine := bytes.Count(good, []byte("\n")) + 1
	broken := filepath.Join(dir, "broken-users")
	if err := os.WriteFile(broken, append(slices.Clip(good), "this is garbage\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, broken, files.users)
	errorsBefore := len(consoleLines(srv.server, " ERR "))
	hup2 := srv.signal(t, syscall.SIGHUP)
	failed := waitConsole(t, srv.server, "reload failed", 1, reloadTimeout)
	failedAfter := time.Since(hup2)
	time.Sleep(200 * time.Millisecond) // room for a second error line, if there were one
	wantErr := fmt.Sprintf("users file %s: line %d:", files.users, badLine)
	switch errs := consoleLines(srv.server, " ERR ")[errorsBefore:]; {
	case len(errs) != 1:
		t.Errorf("%d error lines after the broken users file, want 1:\n%s", len(errs), strings.Join(errs, ""))
	case !strings.Contains(errs[0], wantErr):
		t.Errorf("the reload's error line does not say %q:\n%s", wantErr, errs[0])
	default:
		t.Logf("broken users file, %v after SIGHUP: %s", failedAfter.Round(time.Millisecond), strings.TrimSpace(failed[0]))
	}
	srv.mustRun(t)
	if n := len(consoleLines(srv.server, "INF reloaded")); n != 1 {
		t.Errorf("%d reloads applied, want 1", n)
	}
	d.Close()
	if err := tryLogin(srv.server, client.QUICDatagram, pinFile(newCert), rd); err != nil {
		t.Errorf("%s (added by the first reload) after the failed reload: %v", rd.name, err)
	}
	if err := tryLogin(srv.server, client.TCP, pinFile(newCert), rc); !errors.Is(err, client.ErrRefused) {
		t.Errorf("%s (removed by the first reload) after the failed reload: %v, want a refusal", rc.name, err)
	}
	if err := tryDial(srv.server, client.QUIC, pinFile(newCert)); err != nil {
		t.Errorf("the failed reload changed the certificate: %v", err)
	}
	m := scrape(t, srv.server)
	for res, want := range map[string]float64{"ok": 1, "error": 1} {
		if got := m.value(t, "dtcall_reloads_total", "result", res); got != want {
			t.Errorf(`dtcall_reloads_total{result=%q} = %v, want %v`, res, got, want)
		}
	}
	if got := m.value(t, "dtcall_calls_ended_total", "reason", "drop"); got != 1 {
		t.Errorf(`dtcall_calls_ended_total{reason="drop"} = %v after the removal of a user in a call, want 1`, got)
	}
	if got := m.value(t, "dtcall_calls_active"); got != 1 {
		t.Errorf("dtcall_calls_active = %v, want 1 (ra's call)", got)
	}

	// (c) The call went on through all of it.
	stats := media.finish(t)
	for _, w := range stats {
		around := w.longestGap(hup.Add(-time.Second), hup2.Add(time.Second))
		t.Logf("%s→%s: %d frames, all in order; longest gap %v overall, %v around the reloads (SIGHUP −1 s to the second SIGHUP +1 s)",
			w.from, w.to, w.sent, w.longestGap(time.Time{}, time.Now()).Round(time.Millisecond), around.Round(time.Millisecond))
	}
	noEvents(t, a)
	noEvents(t, b)
	hangUpCall(t, a, b)
}

// ---------------------------------------------------------------- test 2

// TestMetricsAndHealth: /healthz, /readyz (watched from the start of the
// process) and /metrics: every documented family with its type and
// labels, then counters that move by exactly what the test did: logins
// (good, bad password), calls (answered, busy, rejected, notavailable, a
// hang-up), sessions by front, the active call, the media bytes relayed,
// the handshakes of both fronts, and one password check per login.
func TestMetricsAndHealth(t *testing.T) {
	t.Parallel()
	bin, _ := sharedBuilds(t)
	dir := t.TempDir()
	ma, mb, mc, moff := newAccount("ma"), newAccount("mb"), newAccount("mc"), newAccount("moff")
	cert := testcert.Write(t)
	files := serverFiles{users: writeUsers(t, bin, dir, []account{ma, mb, mc, moff}), logs: filepath.Join(dir, "logs"),
		cert: cert.CertFile, key: cert.KeyFile, metrics: true}

	// Watch /readyz from the start of the process: no answer, 503, 200.
	// (A failed start is tried again on other ports: one watch each.)
	var probe struct {
		sync.Mutex
		seen []string
		done chan struct{} // the last watch's
	}
	files.started = func(s *server) {
		stop, done := make(chan struct{}), make(chan struct{})
		probe.Lock()
		probe.seen, probe.done = nil, done
		probe.Unlock()
		go func() { // stopped and waited for by the cleanup below
			defer close(done)
			deadline := time.Now().Add(readyTimeout)
			for time.Now().Before(deadline) {
				code, _, err := httpGet(s, "/readyz")
				what := strconv.Itoa(code)
				if err != nil {
					what = "no answer"
				}
				probe.Lock()
				if probe.done == done && (len(probe.seen) == 0 || probe.seen[len(probe.seen)-1] != what) {
					probe.seen = append(probe.seen, what)
				}
				probe.Unlock()
				if code == http.StatusOK {
					return
				}
				select {
				case <-stop:
					return
				case <-s.exited:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
		t.Cleanup(func() { close(stop); <-done })
	}
	srv := startOpServer(t, bin, dir, files)
	probe.Lock()
	done := probe.done
	probe.Unlock()
	select {
	case <-done:
		probe.Lock()
		t.Logf("/readyz from the start of the process: %s", strings.Join(probe.seen, " → "))
		// In this order, each at most once: not listening yet, starting, ready.
		order := []string{"no answer", "503", "200"}
		for i, st := range probe.seen {
			if k := slices.Index(order, st); k < 0 || i > 0 && k <= slices.Index(order, probe.seen[i-1]) {
				t.Errorf("/readyz from the start of the process: %q, want some of %q in that order", probe.seen, order)
				break
			}
		}
		probe.Unlock()
	case <-time.After(opTimeout):
		t.Errorf("/readyz not 200 within %v of the ready line", opTimeout)
	}
	if code, body, err := httpGet(srv.server, "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz: %d %q, %v; want 200", code, body, err)
	}
	if code, body, err := httpGet(srv.server, "/readyz"); err != nil || code != http.StatusOK || strings.TrimSpace(body) != "ready" {
		t.Errorf("/readyz: %d %q, %v; want 200 ready", code, body, err)
	}

	before := scrape(t, srv.server)
	checkFamilies(t, before)

	// Logins: three good, one bad password; four password checks.
	a := online(t, srv, client.TCP, pinFile(cert.CertFile), ma)
	b := online(t, srv, client.QUIC, pinFile(cert.CertFile), mb)
	c := online(t, srv, client.QUICDatagram, pinFile(cert.CertFile), mc)
	if err := tryLogin(srv.server, client.TCP, pinFile(cert.CertFile), account{ma.name, "wrong-" + ma.password}); !errors.Is(err, client.ErrRefused) {
		t.Errorf("login with a wrong password: %v, want a refusal", err)
	}
	logins := scrape(t, srv.server)
	for front, want := range map[string]float64{"tcp": 1, "quic": 2} {
		if got := logins.value(t, "dtcall_sessions", "front", front); got != want {
			t.Errorf(`dtcall_sessions{front=%q} = %v, want %v`, front, got, want)
		}
	}

	// An answered call, busy for a third party, media both ways, hang-up.
	startCall(t, a, b)
	if res, err := c.Call(ctxFor(t), a.User()); err != nil || res != client.Busy {
		t.Errorf("%s calls %s, who is in a call: %v, %v; want busy", c.User(), a.User(), res, err)
	}
	media := startMedia(t, a, b)
	time.Sleep(500 * time.Millisecond)
	inCall1 := scrape(t, srv.server)
	time.Sleep(500 * time.Millisecond)
	inCall2 := scrape(t, srv.server)
	if got := inCall2.value(t, "dtcall_calls_active"); got != 1 {
		t.Errorf("dtcall_calls_active = %v during the call, want 1", got)
	}
	for _, direction := range []string{"in", "out"} {
		if d := delta(t, inCall1, inCall2, "dtcall_media_bytes_total", "direction", direction); d <= 0 {
			t.Errorf(`dtcall_media_bytes_total{direction=%q} moved by %v in 500 ms of the call, want more`, direction, d)
		}
	}
	stats := media.finish(t)
	hangUpCall(t, a, b)
	var mediaBytes float64
	for _, w := range stats {
		mediaBytes += float64(w.sent * frameSize)
	}
	// The next call to b: a rejected one; then one to a user offline.
	for _, cl := range []*client.Client{a, b} {
		if err := cl.RegisterMedia(ctxFor(t)); err != nil {
			t.Fatalf("%s: register media after the call: %v", cl.User(), err)
		}
	}
	if res, err := a.Call(ctxFor(t), b.User()); err != nil || res != client.Available {
		t.Fatalf("%s calls %s: %v, %v; want available", a.User(), b.User(), res, err)
	}
	expectEvent(t, b, client.Incoming, a.User())
	if err := b.Reject(ctxFor(t), a.User()); err != nil {
		t.Fatalf("%s rejects: %v", b.User(), err)
	}
	expectEvent(t, a, client.Rejected, b.User())
	if res, err := a.Call(ctxFor(t), moff.name); err != nil || res != client.NotAvailable {
		t.Errorf("%s calls %s (offline): %v, %v; want notavailable", a.User(), moff.name, res, err)
	}
	after := scrape(t, srv.server)
	checkFamilies(t, after)
	for name := range after {
		if strings.HasPrefix(name, "dtcall_cluster_") {
			t.Errorf("a single node exports %s", name)
		}
	}

	for _, want := range []struct {
		name   string
		labels []string
		delta  float64
	}{
		{"dtcall_logins_total", []string{"result", "ok"}, 3},
		{"dtcall_logins_total", []string{"result", "bad_credentials"}, 1},
		{"dtcall_logins_total", []string{"result", "banned"}, 0},
		{"dtcall_logins_total", []string{"result", "throttled"}, 0},
		{"dtcall_logins_total", []string{"result", "invalid"}, 0},
		{"dtcall_login_check_seconds", nil, 4}, // its _count: one check per login
		{"dtcall_calls_total", []string{"result", "answered"}, 1},
		{"dtcall_calls_total", []string{"result", "rejected"}, 1},
		{"dtcall_calls_total", []string{"result", "busy"}, 1}, // RegisterMedia's calls to oneself do not count
		{"dtcall_calls_total", []string{"result", "notavailable"}, 1},
		{"dtcall_calls_total", []string{"result", "timeout"}, 0},
		{"dtcall_calls_total", []string{"result", "cancelled"}, 0},
		{"dtcall_calls_ended_total", []string{"reason", "hangup"}, 1},
		{"dtcall_calls_ended_total", []string{"reason", "drop"}, 0},
		{"dtcall_calls_ended_total", []string{"reason", "shutdown"}, 0},
		{"dtcall_media_bytes_total", []string{"direction", "in"}, mediaBytes},
		{"dtcall_media_bytes_total", []string{"direction", "out"}, mediaBytes},
		{"dtcall_reloads_total", []string{"result", "ok"}, 0},
		{"dtcall_reloads_total", []string{"result", "error"}, 0},
	} {
		if got := delta(t, before, after, want.name, want.labels...); got != want.delta {
			t.Errorf("%s%v moved by %v, want %v", want.name, want.labels, got, want.delta)
		}
	}
	if got := after.value(t, "dtcall_calls_active"); got != 0 {
		t.Errorf("dtcall_calls_active = %v after the call, want 0", got)
	}
	// Handshakes: four TLS connections over TCP (a's command connection, its
	// media connection twice, the wrong password's command connection), two
	// QUIC connections (b, c), none failed.
	for _, h := range []struct {
		front, engine, result string
		delta                 float64
	}{
		{"tcp", "crypto/tls", "ok", 4}, {"quic", "quic", "ok", 2},
		{"tcp", "crypto/tls", "failed", 0}, {"quic", "quic", "failed", 0}, {"tcp", "openssl", "ok", 0},
	} {
		if got := delta(t, before, after, "dtcall_handshakes_total", "front", h.front, "engine", h.engine, "result", h.result); got != h.delta {
			t.Errorf(`dtcall_handshakes_total{front=%q,engine=%q,result=%q} moved by %v, want %v`, h.front, h.engine, h.result, got, h.delta)
		}
	}
	t.Logf("moved: logins ok %v, bad %v, checks %v (sum %.3f s), handshakes tcp/crypto-tls ok %v, quic ok %v, media in %v out %v bytes",
		delta(t, before, after, "dtcall_logins_total", "result", "ok"),
		delta(t, before, after, "dtcall_logins_total", "result", "bad_credentials"),
		delta(t, before, after, "dtcall_login_check_seconds"),
		after.histogramSum(t, "dtcall_login_check_seconds")-before.histogramSum(t, "dtcall_login_check_seconds"),
		delta(t, before, after, "dtcall_handshakes_total", "front", "tcp", "engine", "crypto/tls", "result", "ok"),
		delta(t, before, after, "dtcall_handshakes_total", "front", "quic", "engine", "quic", "result", "ok"),
		delta(t, before, after, "dtcall_media_bytes_total", "direction", "in"),
		delta(t, before, after, "dtcall_media_bytes_total", "direction", "out"))

	// Everyone leaves: no session is left on either front.
	for _, cl := range []*client.Client{a, b, c} {
		cl.Close()
	}
	deadline := time.Now().Add(atOnce)
	for {
		m := scrape(t, srv.server)
		tcp, quic := m.value(t, "dtcall_sessions", "front", "tcp"), m.value(t, "dtcall_sessions", "front", "quic")
		if tcp == 0 && quic == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("dtcall_sessions tcp %v, quic %v %v after every client closed, want 0", tcp, quic, atOnce)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// family is a documented metric family: its type, and each label with
// every value it takes (every combination is exported, zeros too).
type family struct {
	name   string
	typ    dto.MetricType
	labels []string
	values [][]string // the label values of each series
}

// one is a family with one label.
func one(name string, typ dto.MetricType, label string, values ...string) family {
	f := family{name: name, typ: typ}
	if label != "" {
		f.labels = []string{label}
		for _, v := range values {
			f.values = append(f.values, []string{v})
		}
	} else {
		f.values = [][]string{nil}
	}
	return f
}

// families are README.md's metric table.
var families = func() []family {
	counter, gauge, histogram := dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_HISTOGRAM
	fs := []family{
		one("dtcall_sessions", gauge, "front", "tcp", "quic"),
		one("dtcall_calls_active", gauge, ""),
		one("dtcall_calls_total", counter, "result", "answered", "rejected", "timeout", "busy", "notavailable", "cancelled"),
		one("dtcall_calls_ended_total", counter, "reason", "hangup", "drop", "shutdown"),
		one("dtcall_logins_total", counter, "result", "ok", "bad_credentials", "banned", "throttled", "invalid"),
		one("dtcall_login_check_seconds", histogram, ""),
		one("dtcall_login_checks_waiting", gauge, ""),
		one("dtcall_login_checks_worker_total", counter, "result", "worker", "fallback"),
		one("dtcall_media_bytes_total", counter, "direction", "in", "out"),
		one("dtcall_media_dropped_total", counter, "reason", "queue_head", "queue_tail", "peer_gone", "write_error", "gone", "quic_receive_queue"),
		one("dtcall_reloads_total", counter, "result", "ok", "error"),
		one("dtcall_draining", gauge, ""),
		one("dtcall_slow_consumers_total", counter, ""),
		one("dtcall_unresponsive_total", counter, ""),
		one("dtcall_write_failures_total", counter, ""),
		one("dtcall_media_queue_delay_max_seconds", gauge, ""),
		one("dtcall_commands_rate_limited_total", counter, ""),
		one("dtcall_flood_disconnects_total", counter, ""),
		one("dtcall_calls_crowded_total", counter, ""),
		one("dtcall_handshakes_in_progress", gauge, "front", "tcp"),
		one("dtcall_autoban_active", gauge, ""),
		one("dtcall_autoban_bans_total", counter, ""),
		one("dtcall_quic_accept_waits_expired_total", counter, ""),
		one("dtcall_memory_trims_total", counter, ""),
	}
	refused := family{name: "dtcall_connections_refused_total", typ: counter, labels: []string{"front", "reason"}}
	for _, r := range []string{"banned", "per_source", "evicted"} {
		refused.values = append(refused.values, []string{"tcp", r})
	}
	for _, r := range []string{"banned", "per_source", "total"} {
		refused.values = append(refused.values, []string{"quic", r})
	}
	fs = append(fs, refused)
	hs := family{name: "dtcall_handshakes_total", typ: counter, labels: []string{"front", "engine", "result"}}
	for _, fe := range [][2]string{{"tcp", "crypto/tls"}, {"tcp", "openssl"}, {"quic", "quic"}} {
		for _, r := range []string{"ok", "failed", "timeout"} {
			hs.values = append(hs.values, []string{fe[0], fe[1], r})
		}
	}
	return append(fs, hs)
}()

// checkFamilies checks that m has every documented family with its type
// and exactly its series, and the process and Go runtime collectors.
func checkFamilies(t *testing.T, m metricSet) {
	t.Helper()
	checkFamilyList(t, m, families)
	for _, name := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
		"go_goroutines", "go_memstats_alloc_bytes", "go_gc_duration_seconds"} {
		if m[name] == nil {
			t.Errorf("no metric family %s (process and Go collectors)", name)
		}
	}
}

// checkFamilyList checks that m has each of fs with its type and exactly
// its series.
func checkFamilyList(t *testing.T, m metricSet, fs []family) {
	t.Helper()
	for _, f := range fs {
		mf := m[f.name]
		if mf == nil {
			t.Errorf("no metric family %s", f.name)
			continue
		}
		if mf.GetType() != f.typ {
			t.Errorf("%s is a %v, want a %v", f.name, mf.GetType(), f.typ)
		}
		var got, want []string
		for _, s := range mf.GetMetric() {
			var names, vals []string
			for _, lp := range s.GetLabel() {
				names = append(names, lp.GetName())
			}
			slices.Sort(names)
			if !slices.Equal(names, sorted(f.labels)) {
				t.Errorf("%s has a series with labels %v, want %v", f.name, names, f.labels)
				continue
			}
			for _, l := range f.labels {
				vals = append(vals, labelValue(s, l))
			}
			got = append(got, strings.Join(vals, ","))
		}
		for _, v := range f.values {
			want = append(want, strings.Join(v, ","))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s has the series %q, want %q", f.name, got, want)
		}
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// ---------------------------------------------------------------- test 3

// TestDrain: SIGTERM is a lame-duck drain.
//   - calls_go_on: /readyz turns 503, dtcall_draining 1, new TCP
//     connections are refused and new QUIC ones fail, the idle sessions
//     (TCP, QUIC) end at once, the QUIC one with code 0x202; the call
//     goes on with media for 2 s; one party hangs up and the process
//     exits 0 shortly after.
//   - drain_time_up: drain = 3s; both parties of a call still up get
//     call|drop at about 3 s, and the process exits 0.
//   - second_sigterm: a second SIGTERM ends the drain at once: both
//     parties get call|drop, and the process exits 0.
func TestDrain(t *testing.T) {
	t.Parallel()
	bin, _ := sharedBuilds(t)
	cert := testcert.Write(t)
	var mu sync.Mutex
	var figures []string
	figure := func(f string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		figures = append(figures, fmt.Sprintf(f, args...))
	}
	t.Cleanup(func() { slices.Sort(figures); t.Logf("drain figures:\n  %s", strings.Join(figures, "\n  ")) })
	start := func(t *testing.T, extra []string, names ...string) (*opServer, []account) {
		dir := t.TempDir()
		var accts []account
		for _, n := range names {
			accts = append(accts, newAccount(n))
		}
		files := serverFiles{users: writeUsers(t, bin, dir, accts), logs: filepath.Join(dir, "logs"),
			cert: cert.CertFile, key: cert.KeyFile, metrics: true, extra: extra}
		return startOpServer(t, bin, dir, files), accts
	}
	pin := pinFile(cert.CertFile)

	t.Run("calls_go_on", func(t *testing.T) {
		t.Parallel()
		srv, ac := start(t, nil, "da", "db", "di1", "di2")
		a := online(t, srv, client.TCP, pin, ac[0])
		b := online(t, srv, client.QUIC, pin, ac[1])
		idleTCP := online(t, srv, client.TCP, pin, ac[2])
		idleQUIC := online(t, srv, client.QUICDatagram, pin, ac[3])
		startCall(t, a, b)
		media := startMedia(t, a, b)
		time.Sleep(500 * time.Millisecond)

		term := srv.signal(t, syscall.SIGTERM)
		var idleWait sync.WaitGroup // the idle sessions end while the checks below run
		for _, idle := range []*client.Client{idleTCP, idleQUIC} {
			idleWait.Go(func() {
				if err := expectClosed(idle, atOnce); err != nil {
					t.Errorf("idle %v session during the drain: %v", idle.Transport(), err)
					return
				}
				figure("calls_go_on: idle %v session closed %v after SIGTERM", idle.Transport(), time.Since(term).Round(time.Millisecond))
			})
		}
		if waitStatus(t, srv.server, "/readyz", http.StatusServiceUnavailable, atOnce) == http.StatusServiceUnavailable {
			figure("calls_go_on: /readyz 503 %v after SIGTERM", time.Since(term).Round(time.Millisecond))
		}
		for _, port := range []int{srv.cmdPort, srv.mediaPort} {
			if err := refusedWithin(port, atOnce); err != nil {
				t.Errorf("TCP port %d during the drain: %v", port, err)
			}
		}
		if err := tryDial(srv.server, client.QUIC, pin); err == nil {
			t.Error("a new QUIC connection during the drain succeeded")
		} else {
			t.Logf("a new QUIC connection during the drain: %v", err)
		}
		idleWait.Wait()
		var appErr *quicgo.ApplicationError
		if err := idleQUIC.Err(); !errors.As(err, &appErr) || !appErr.Remote || appErr.ErrorCode != 0x202 {
			t.Errorf("idle QUIC session: %v, want the server's close code 0x202", err)
		} else {
			t.Logf("idle QUIC session: %v", err)
		}
		if code, _, err := httpGet(srv.server, "/healthz"); err != nil || code != http.StatusOK {
			t.Errorf("/healthz during the drain: %d, %v; want 200", code, err)
		}
		if got := scrape(t, srv.server).value(t, "dtcall_draining"); got != 1 {
			t.Errorf("dtcall_draining = %v during the drain, want 1", got)
		}
		waitConsole(t, srv.server, "calls_left=1", 1, atOnce)

		time.Sleep(2 * time.Second) // the call goes on
		srv.mustRun(t)
		for _, w := range media.finish(t) {
			t.Logf("%s→%s: %d frames in order, longest gap %v (SIGTERM at %v into the call)", w.from, w.to, w.sent,
				w.longestGap(time.Time{}, time.Now()).Round(time.Millisecond), term.Sub(media.begin).Round(time.Millisecond))
		}
		noEvents(t, a)
		noEvents(t, b)
		hung := time.Now()
		hangUpCall(t, a, b)
		exit := srv.waitExit(t, hung, 10*time.Second)
		figure("calls_go_on: exit 0 %v after the hang-up (%v after SIGTERM)", exit.Round(time.Millisecond), time.Since(term).Round(time.Millisecond))
		for _, cl := range []*client.Client{a, b} {
			if err := expectClosed(cl, time.Second); err != nil {
				t.Errorf("%s after the server exited: %v", cl.User(), err)
			}
		}
	})

	t.Run("drain_time_up", func(t *testing.T) {
		t.Parallel()
		const drain = 3 * time.Second
		srv, ac := start(t, []string{"drain = 3s"}, "ta", "tb")
		a := online(t, srv, client.TCP, pin, ac[0])
		b := online(t, srv, client.QUICDatagram, pin, ac[1])
		startCall(t, a, b)
		media := startMedia(t, a, b)
		term := srv.signal(t, syscall.SIGTERM)
		waitStatus(t, srv.server, "/readyz", http.StatusServiceUnavailable, atOnce)
		time.Sleep(drain - 800*time.Millisecond) // the call goes on until the drain is up
		for _, w := range media.finish(t) {
			t.Logf("%s→%s during the drain: %d frames in order, longest gap %v", w.from, w.to, w.sent,
				w.longestGap(time.Time{}, time.Now()).Round(time.Millisecond))
		}
		drops := expectDrops(t, term, a, b)
		for i, d := range drops {
			if d >= 0 && (d < drain-100*time.Millisecond || d > drain+2*time.Second) {
				t.Errorf("party %d told call|drop %v after SIGTERM, want about %v (drain)", i, d.Round(time.Millisecond), drain)
			}
		}
		exit := srv.waitExit(t, term, drain+10*time.Second)
		figure("drain_time_up (drain = 3s): call|drop to %s %s and to %s %s after SIGTERM, exit 0 %v after SIGTERM",
			a.User(), dropFigure(drops[0]), b.User(), dropFigure(drops[1]), exit.Round(time.Millisecond))
		waitConsole(t, srv.server, "drain time is up", 1, time.Second)
	})

	t.Run("second_sigterm", func(t *testing.T) {
		t.Parallel()
		srv, ac := start(t, nil, "sa", "sb")
		a := online(t, srv, client.QUIC, pin, ac[0])
		b := online(t, srv, client.TCP, pin, ac[1])
		startCall(t, a, b)
		media := startMedia(t, a, b)
		term := srv.signal(t, syscall.SIGTERM)
		waitStatus(t, srv.server, "/readyz", http.StatusServiceUnavailable, atOnce)
		time.Sleep(time.Second)
		media.finish(t)
		noEvents(t, a)
		noEvents(t, b)
		second := srv.signal(t, syscall.SIGTERM)
		drops := expectDrops(t, second, a, b)
		for i, d := range drops {
			if d >= 0 && d > atOnce {
				t.Errorf("party %d told call|drop %v after the second SIGTERM, want at once", i, d.Round(time.Millisecond))
			}
		}
		exit := srv.waitExit(t, second, 10*time.Second)
		figure("second_sigterm (%v after the first): call|drop to %s %s and to %s %s after it, exit 0 %v after it",
			second.Sub(term).Round(time.Millisecond), a.User(), dropFigure(drops[0]), b.User(), dropFigure(drops[1]),
			exit.Round(time.Millisecond))
		waitConsole(t, srv.server, "second terminated", 1, time.Second)
	})
}

// expectDrops waits for call|drop on each client, each with its own
// session id, and returns how long after since each came (-1: it did not).
func expectDrops(t *testing.T, since time.Time, cls ...*client.Client) []time.Duration {
	t.Helper()
	took := make([]time.Duration, len(cls))
	var wg sync.WaitGroup
	for i, cl := range cls {
		wg.Go(func() {
			ev, err := nextEvent(cl, 10*time.Second)
			took[i] = time.Since(since)
			if err != nil || ev.Kind != client.Dropped {
				took[i] = -1
			}
			switch {
			case err != nil:
				t.Errorf("%s: %v, want call|drop", cl.User(), err)
			case ev.Kind != client.Dropped || ev.Value != cl.SessionID():
				t.Errorf("%s: got %v (%s), want call|drop|%s", cl.User(), ev, ev.Value, cl.SessionID())
			}
		})
	}
	wg.Wait()
	return took
}

func dropFigure(d time.Duration) string {
	if d < 0 {
		return "none"
	}
	return d.Round(time.Millisecond).String()
}

// refusedWithin checks that a TCP connection to port is refused, within d.
func refusedWithin(port int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		if conn != nil {
			conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still accepted %v after SIGTERM (%v), want refused", d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- test 4

// TestCertificateRenewalKeepsKeyPins:
//   - renewal: clients pinning the server's public key (spki:HEX from the
//     server's log line, sha256/BASE64) keep working after the certificate
//     is renewed with the same key, replaced in place and reloaded; a
//     client pinning the old certificate (sha256:HEX) is refused, over
//     QUIC, TCP and the DHE engine; a session from before goes on.
//   - ca_mode: modern_public/modern_private issued by a test CA for
//     localhost and 127.0.0.1, public/private an RSA self-signed one: QUIC
//     and crypto/tls TCP clients verify it with CAFile and ServerName (a
//     wrong name or another CA is refused), the 2017 Android (DHE only)
//     client still gets the RSA certificate.
func TestCertificateRenewalKeepsKeyPins(t *testing.T) {
	t.Parallel()
	bin, _ := sharedBuilds(t)

	t.Run("renewal", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		kp := newAccount("kp")
		files := serverFiles{users: writeUsers(t, bin, dir, []account{kp}), logs: filepath.Join(dir, "logs"),
			cert: filepath.Join(dir, "live-cert.pem"), key: filepath.Join(dir, "live-key.pem")}
		old := testcert.Write(t)
		replaceFile(t, old.KeyFile, files.key)
		replaceFile(t, old.CertFile, files.cert)
		srv := startOpServer(t, bin, dir, files)

		line := waitConsole(t, srv.server, "clients pin one of these", 1, time.Second)[0]
		spki, spkiB64, oldPin := logValue(t, line, "spki"), logValue(t, line, "spki_base64"), logValue(t, line, "fingerprint")
		if want := certPin(t, old.CertFile); oldPin != want {
			t.Errorf("the server logs fingerprint=%s, want %s", oldPin, want)
		}
		if want := spkiPin(t, old.CertFile); spki != want {
			t.Errorf("the server logs spki=%s, want %s", spki, want)
		}
		for _, p := range []string{spki, spkiB64, oldPin} {
			for _, tr := range []client.Transport{client.QUIC, client.TCP} {
				if err := tryDial(srv.server, tr, pinSHA256(p)); err != nil {
					t.Errorf("%v client pinned to %s before the renewal: %v", tr, p, err)
				}
			}
		}
		before := online(t, srv, client.QUIC, pinSHA256(spki), kp)

		renewed := testcert.Renew(t, old)
		replaceFile(t, renewed.KeyFile, files.key)
		replaceFile(t, renewed.CertFile, files.cert)
		srv.signal(t, syscall.SIGHUP)
		waitConsole(t, srv.server, "INF reloaded", 1, reloadTimeout)
		lines := consoleLines(srv.server, "clients pin one of these")
		newPin := certPin(t, renewed.CertFile)
		if last := lines[len(lines)-1]; logValue(t, last, "fingerprint") != newPin || logValue(t, last, "spki") != spki {
			t.Errorf("after the reload the server logs %s, want fingerprint=%s spki=%s", strings.TrimSpace(last), newPin, spki)
		}
		if _, err := before.Lookup(ctxFor(t), kp.name); err != nil {
			t.Errorf("the QUIC session from before the renewal: %v", err)
		}
		type dial struct {
			name string
			tr   client.Transport
			dhe  bool
		}
		for _, d := range []dial{{"quic", client.QUIC, false}, {"tcp", client.TCP, false}, {"tcp-dhe", client.TCP, true}} {
			set := func(p string) func(*client.Options) {
				return func(o *client.Options) { o.PinSHA256, o.TLS12DHEOnly = p, d.dhe }
			}
			for _, p := range []string{spki, spkiB64, newPin} {
				if err := tryDial(srv.server, d.tr, set(p)); err != nil {
					t.Errorf("%s client pinned to %s after the renewal: %v", d.name, p, err)
				}
			}
			err := tryDial(srv.server, d.tr, set(oldPin))
			var pe *client.PinError
			if !errors.As(err, &pe) || pe.Kind != client.CertificatePin || pe.Got != newPin {
				t.Errorf("%s client pinned to the old certificate %s after the renewal: %v, want a *client.PinError (got %s)",
					d.name, oldPin, err, newPin)
			}
		}
		if err := tryLogin(srv.server, client.QUICDatagram, pinSHA256(spki), kp); err != nil {
			t.Errorf("login with the public-key pin after the renewal: %v", err)
		}
	})

	t.Run("ca_mode", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		ca := testcert.WriteCA(t)
		leaf := ca.Issue(t, "localhost", "127.0.0.1")
		legacyCert, legacyKey := writeCert(t, dir, "legacy")
		files := serverFiles{users: writeUsers(t, bin, dir, []account{newAccount("ca")}), logs: filepath.Join(dir, "logs"),
			cert: legacyCert, key: legacyKey, modernCert: leaf.CertFile, modernKey: leaf.KeyFile}
		srv := startOpServer(t, bin, dir, files)
		if l := consoleLines(srv.server, "certificate for QUIC and TLS 1.3/ECDHE clients"); len(l) != 1 ||
			!strings.Contains(l[0], certPin(t, leaf.CertFile)) {
			t.Errorf("the server does not log the modern certificate's fingerprint %s: %q", certPin(t, leaf.CertFile), l)
		}
		caMode := func(name string) func(*client.Options) {
			return func(o *client.Options) { o.CAFile, o.ServerName = ca.CertFile, name }
		}
		for _, tr := range []client.Transport{client.QUIC, client.QUICDatagram, client.TCP} {
			for _, name := range []string{"localhost", "127.0.0.1"} {
				if err := tryDial(srv.server, tr, caMode(name)); err != nil {
					t.Errorf("%v client, CA mode, server name %s: %v", tr, name, err)
				}
			}
			var he x509.HostnameError
			if err := tryDial(srv.server, tr, caMode("wrong.example")); !errors.As(err, &he) {
				t.Errorf("%v client, CA mode, server name wrong.example: %v, want an x509.HostnameError", tr, err)
			}
			other := testcert.WriteCA(t)
			var ua x509.UnknownAuthorityError
			err := tryDial(srv.server, tr, func(o *client.Options) { o.CAFile, o.ServerName = other.CertFile, "localhost" })
			if !errors.As(err, &ua) {
				t.Errorf("%v client, CA mode with another CA: %v, want an x509.UnknownAuthorityError", tr, err)
			}
		}
		// Who sees which certificate: the modern TCP client the CA's, the
		// DHE-only one the RSA self-signed one.
		dhe := func(set func(*client.Options)) func(*client.Options) {
			return func(o *client.Options) { set(o); o.TLS12DHEOnly = true }
		}
		if err := tryDial(srv.server, client.TCP, dhe(pinFile(legacyCert))); err != nil {
			t.Errorf("DHE-only client pinned to the RSA certificate (public): %v", err)
		}
		var pe *client.PinError
		if err := tryDial(srv.server, client.TCP, dhe(pinFile(leaf.CertFile))); !errors.As(err, &pe) || pe.Cert != certPin(t, legacyCert) {
			t.Errorf("DHE-only client pinned to the CA-issued certificate: %v, want a *client.PinError showing the RSA certificate %s",
				err, certPin(t, legacyCert))
		}
		if err := tryDial(srv.server, client.TCP, pinFile(legacyCert)); !errors.As(err, &pe) || pe.Cert != certPin(t, leaf.CertFile) {
			t.Errorf("modern TCP client pinned to the RSA certificate: %v, want a *client.PinError showing the CA-issued %s",
				err, certPin(t, leaf.CertFile))
		}
		if err := tryDial(srv.server, client.TCP, pinFile(leaf.CertFile)); err != nil {
			t.Errorf("modern TCP client pinned to the CA-issued certificate: %v", err)
		}
		if err := tryDial(srv.server, client.QUIC, pinFile(legacyCert)); !errors.As(err, &pe) {
			t.Errorf("QUIC client pinned to the RSA certificate: %v, want a *client.PinError", err)
		}
	})
}

// ---------------------------------------------------------------- servers

// opServer is a running dtoperator of these tests.
type opServer struct{ *server }

// startOpServer starts dtoperator with files in dir; its console is logged
// if t fails.
func startOpServer(t *testing.T, bin, dir string, files serverFiles) *opServer {
	t.Helper()
	srv := startServer(t, bin, dir, files)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dtoperator console:\n%s", srv.console)
		}
	})
	return &opServer{srv}
}

// signal sends sig to the server and returns when.
func (s *opServer) signal(t *testing.T, sig syscall.Signal) time.Time {
	t.Helper()
	s.mustRun(t)
	at := time.Now()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("send %v to dtoperator: %v", sig, err)
	}
	return at
}

// mustRun fails t if the server has exited.
func (s *opServer) mustRun(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
		t.Fatalf("dtoperator exited (%v)", s.waitErr)
	default:
	}
}

// waitExit waits up to d after since for the server to exit, checks that
// it exited 0, and returns how long after since it exited.
func (s *opServer) waitExit(t *testing.T, since time.Time, d time.Duration) time.Duration {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(time.Until(since.Add(d))):
		t.Fatalf("dtoperator still runs %v later", d)
	}
	took := time.Since(since)
	if s.waitErr != nil {
		t.Errorf("dtoperator exited with %v, want status 0", s.waitErr)
	}
	return took
}

// consoleLines returns the server's console lines that hold s.
func consoleLines(s *server, sub string) []string {
	var lines []string
	for line := range strings.Lines(s.console.String()) {
		if strings.Contains(line, sub) {
			lines = append(lines, line)
		}
	}
	return lines
}

// waitConsole waits up to d until the console has n lines that hold sub,
// and returns them.
func waitConsole(t *testing.T, s *server, sub string, n int, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if lines := consoleLines(s, sub); len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("dtoperator did not log %d lines with %q within %v", n, sub, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logValue is the value of key=value in a console line.
func logValue(t *testing.T, line, key string) string {
	t.Helper()
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			if u, err := strconv.Unquote(v); err == nil { // tint quotes some values
				return u
			}
			return v
		}
	}
	t.Errorf("no %s= in %q", key, line)
	return ""
}

// replaceFile copies src over dst as certbot-style tools and "dtoperator
// user" do: a temporary file next to dst, renamed over it.
func replaceFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// userCmd runs "dtoperator user args..." with stdin.
func userCmd(t *testing.T, bin, stdin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"user"}, args...)...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dtoperator user %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newAccount is an account with a random password.
func newAccount(name string) account { return account{name, "pw-" + rand.Text()} }

// ---------------------------------------------------------------- certificates

func pinFile(f string) func(*client.Options)   { return func(o *client.Options) { o.PinFile = f } }
func pinSHA256(p string) func(*client.Options) { return func(o *client.Options) { o.PinSHA256 = p } }

// certPin is "sha256:HEX" of the first certificate in file.
func certPin(t *testing.T, file string) string {
	t.Helper()
	sum := sha256.Sum256(readCert(t, file).Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// spkiPin is "spki:HEX" of the first certificate in file.
func spkiPin(t *testing.T, file string) string {
	t.Helper()
	sum := sha256.Sum256(readCert(t, file).RawSubjectPublicKeyInfo)
	return "spki:" + hex.EncodeToString(sum[:])
}

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate first", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ---------------------------------------------------------------- clients

// clientOptions are the options of a client of srv over tr; set adds how
// it checks the server.
func clientOptions(s *server, tr client.Transport, set func(*client.Options)) client.Options {
	o := client.Options{Server: "127.0.0.1", CommandPort: s.cmdPort, MediaPort: s.mediaPort, QUICPort: s.cmdPort,
		Transport: tr, Timeout: opTimeout, DialTimeout: time.Second}
	set(&o)
	return o
}

// ctxFor is a context for one request: opTimeout, cancelled when t ends.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

// tryDial dials srv (the handshake and its certificate check) and closes.
func tryDial(s *server, tr client.Transport, set func(*client.Options)) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	c, err := client.Dial(ctx, clientOptions(s, tr, set))
	if err != nil {
		return err
	}
	return c.Close()
}

// tryLogin dials srv, logs in as a and closes.
func tryLogin(s *server, tr client.Transport, set func(*client.Options), a account) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	c, err := client.Dial(ctx, clientOptions(s, tr, set))
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Login(ctx, a.name, a.password)
}

// online dials srv, logs in as a and registers media; t's cleanup closes
// the client.
func online(t *testing.T, s *opServer, tr client.Transport, set func(*client.Options), a account) *client.Client {
	t.Helper()
	ctx := ctxFor(t)
	c, err := client.Dial(ctx, clientOptions(s.server, tr, set))
	if err != nil {
		t.Fatalf("%s: dial %v: %v", a.name, tr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(ctx, a.name, a.password); err != nil {
		t.Fatalf("%s: login over %v: %v", a.name, tr, err)
	}
	if err := c.RegisterMedia(ctx); err != nil {
		t.Fatalf("%s: register media over %v: %v", a.name, tr, err)
	}
	return c
}

// startCall has caller call callee, who accepts; both see the call start.
func startCall(t *testing.T, caller, callee *client.Client) {
	t.Helper()
	if res, err := caller.Call(ctxFor(t), callee.User()); err != nil || res != client.Available {
		t.Fatalf("%s calls %s: %v, %v; want available", caller.User(), callee.User(), res, err)
	}
	expectEvent(t, callee, client.Incoming, caller.User())
	if err := callee.Accept(ctxFor(t), caller.User()); err != nil {
		t.Fatalf("%s accepts %s: %v", callee.User(), caller.User(), err)
	}
	expectEvent(t, caller, client.Started, callee.User())
	expectEvent(t, callee, client.Started, caller.User())
}

// hangUpCall has a end the call with b; b is told call|end.
func hangUpCall(t *testing.T, a, b *client.Client) {
	t.Helper()
	if err := a.End(ctxFor(t), b.User()); err != nil {
		t.Fatalf("%s hangs up: %v", a.User(), err)
	}
	expectEvent(t, b, client.Ended, a.User())
}

// expectEvent waits up to opTimeout for c's next event, which must be kind
// about peer.
func expectEvent(t *testing.T, c *client.Client, kind client.EventKind, peer string) {
	t.Helper()
	ev, err := nextEvent(c, opTimeout)
	if err != nil || ev.Kind != kind || ev.Peer != peer {
		t.Fatalf("%s: got %v, %v; want %v %s", c.User(), ev, err, kind, peer)
	}
}

// expectClosed waits up to d for c's command channel to end, without an
// event before.
func expectClosed(c *client.Client, d time.Duration) error {
	select {
	case ev, ok := <-c.Events():
		if ok {
			return fmt.Errorf("got %v (%s), want the connection closed", ev, ev.Value)
		}
		return nil
	case <-time.After(d):
		return fmt.Errorf("still connected %v later", d)
	}
}

// noEvents checks that c has had no notice: a lookup's answer comes after
// any the server sent before it.
func noEvents(t *testing.T, c *client.Client) {
	t.Helper()
	if _, err := c.Lookup(ctxFor(t), c.User()); err != nil {
		t.Errorf("%s: lookup: %v", c.User(), err)
	}
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Errorf("%s: the command channel ended: %v", c.User(), c.Err())
		} else {
			t.Errorf("%s: got %v (%s), want no notice", c.User(), ev, ev.Value)
		}
	default:
	}
}

// ---------------------------------------------------------------- media

// callMedia is the media of a call: each party sends numbered frames at 50
// a second, and each checks what it receives.
type callMedia struct {
	ways    [2]*oneWay
	begin   time.Time
	stop    chan struct{}
	cancel  context.CancelFunc
	senders sync.WaitGroup
	readers sync.WaitGroup
	once    sync.Once
}

// oneWay is one direction of a call's media: frame(from, to, i) for i from 0.
type oneWay struct {
	from, to string
	mu       sync.Mutex
	sent     int
	arrived  []time.Time // when frame i arrived
	bad      error       // the first frame that was not the one due, or what ended the media
}

// startMedia starts the media between a and b; t's cleanup stops it.
func startMedia(t *testing.T, a, b *client.Client) *callMedia {
	ctx, cancel := context.WithCancel(context.Background())
	cm := &callMedia{begin: time.Now(), stop: make(chan struct{}), cancel: cancel}
	for i, p := range [][2]*client.Client{{a, b}, {b, a}} {
		w := &oneWay{from: p[0].User(), to: p[1].User()}
		cm.ways[i] = w
		src, dst := p[0].Media(), p[1].Media()
		cm.senders.Go(func() { w.send(cm.stop, src) })
		cm.readers.Go(func() { w.receive(ctx, dst) })
	}
	t.Cleanup(cm.halt)
	return cm
}

// halt stops the senders and the readers.
func (cm *callMedia) halt() {
	cm.once.Do(func() { close(cm.stop) })
	cm.senders.Wait()
	cm.cancel()
	cm.readers.Wait()
}

// finish stops sending, gives the frames under way a moment to arrive,
// stops reading and checks that every frame arrived, in order, and that no
// gap between two frames exceeded maxMediaGap.
func (cm *callMedia) finish(t *testing.T) [2]*oneWay {
	t.Helper()
	cm.once.Do(func() { close(cm.stop) })
	cm.senders.Wait()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && !(cm.ways[0].complete() && cm.ways[1].complete()) {
		time.Sleep(10 * time.Millisecond)
	}
	cm.halt()
	for _, w := range cm.ways {
		switch {
		case w.bad != nil:
			t.Errorf("media %s→%s: %v", w.from, w.to, w.bad)
		case w.sent < 10:
			t.Errorf("media %s→%s: only %d frames sent", w.from, w.to, w.sent)
		case len(w.arrived) != w.sent:
			t.Errorf("media %s→%s: %d frames arrived of %d sent", w.from, w.to, len(w.arrived), w.sent)
		}
		if g := w.longestGap(time.Time{}, time.Now()); g > maxMediaGap {
			t.Errorf("media %s→%s: a gap of %v between two frames, want at most %v", w.from, w.to, g.Round(time.Millisecond), maxMediaGap)
		}
	}
	return cm.ways
}

func (w *oneWay) complete() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.arrived) >= w.sent || w.bad != nil
}

func (w *oneWay) send(stop <-chan struct{}, m *client.Media) {
	tick := time.NewTicker(framePace)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if err := m.WriteMedia(frame(w.from, w.to, i)); err != nil {
			w.fail(fmt.Errorf("write frame %d: %w", i, err))
			return
		}
		w.mu.Lock()
		w.sent++
		w.mu.Unlock()
	}
}

func (w *oneWay) receive(ctx context.Context, m *client.Media) {
	var buf []byte
	for {
		p, err := m.ReadMedia(ctx)
		if err != nil {
			if ctx.Err() == nil {
				w.fail(fmt.Errorf("read media: %w", err))
			}
			return
		}
		now := time.Now()
		buf = append(buf, p...)
		w.mu.Lock()
		for len(buf) >= frameSize {
			i := len(w.arrived)
			if want := frame(w.from, w.to, i); !bytes.Equal(buf[:frameSize], want) && w.bad == nil {
				w.bad = fmt.Errorf("frame %d is %q, want %q", i, buf[:frameSize], want)
			}
			w.arrived = append(w.arrived, now)
			buf = buf[frameSize:]
		}
		w.mu.Unlock()
	}
}

func (w *oneWay) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bad == nil {
		w.bad = err
	}
}

// longestGap is the longest time between two frames that arrived one
// after the other, of those gaps that overlap [from, to].
func (w *oneWay) longestGap(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var longest time.Duration
	for i := 1; i < len(w.arrived); i++ {
		prev, next := w.arrived[i-1], w.arrived[i]
		if next.Before(from) || prev.After(to) {
			continue
		}
		longest = max(longest, next.Sub(prev))
	}
	return longest
}

// ---------------------------------------------------------------- metrics

// admin is the HTTP client of the admin endpoint; without keep-alives, it
// leaves no connection (and goroutine) behind.
var admin = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// httpGet gets path from the server's admin endpoint.
func httpGet(s *server, path string) (int, string, error) {
	resp, err := admin.Get("http://" + s.metricsAddr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitStatus polls path until it answers code, for up to d, and returns
// the last status (0: no answer).
func waitStatus(t *testing.T, s *server, path string, code int, d time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got, body, err := httpGet(s, path)
		if got == code {
			return got
		}
		if time.Now().After(deadline) {
			t.Errorf("%s answers %d %q (%v) after %v, want %d", path, got, strings.TrimSpace(body), err, d, code)
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metricSet is a scrape of /metrics.
type metricSet map[string]*dto.MetricFamily

// scrape gets and parses /metrics.
func scrape(t *testing.T, s *server) metricSet {
	t.Helper()
	m, err := fetchMetrics(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fetchMetrics is scrape for a goroutine that may not fail the test.
func fetchMetrics(s *server) (metricSet, error) {
	code, body, err := httpGet(s, "/metrics")
	if err != nil || code != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %d, %v", code, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("/metrics is not in the Prometheus text format: %v\n%s", err, body)
	}
	return fams, nil
}

// series is the series of family name with the label pairs given (name,
// value, ...), or nil.
func (m metricSet) series(t *testing.T, name string, labels ...string) *dto.Metric {
	t.Helper()
	f := m[name]
	if f == nil {
		t.Errorf("no metric family %s", name)
		return nil
	}
	for _, s := range f.GetMetric() {
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			ok = ok && labelValue(s, labels[i]) == labels[i+1]
		}
		if ok {
			return s
		}
	}
	t.Errorf("%s has no series %v", name, labels)
	return nil
}

// value is the value of a series: a counter's or gauge's value, a
// histogram's count; NaN if there is none.
func (m metricSet) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	s := m.series(t, name, labels...)
	switch {
	case s == nil:
		return math.NaN()
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	case s.Untyped != nil:
		return s.Untyped.GetValue()
	}
	t.Errorf("%s%v: no value", name, labels)
	return math.NaN()
}

func (m metricSet) histogramSum(t *testing.T, name string) float64 {
	t.Helper()
	if s := m.series(t, name); s != nil && s.Histogram != nil {
		return s.Histogram.GetSampleSum()
	}
	return math.NaN()
}

func labelValue(s *dto.Metric, name string) string {
	for _, lp := range s.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// delta is how much a series moved from before to after.
func delta(t *testing.T, before, after metricSet, name string, labels ...string) float64 {
	t.Helper()
	return after.value(t, name, labels...) - before.value(t, name, labels...)
}
