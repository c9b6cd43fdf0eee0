package interop

// Liveness: a party or the server that dies mid-call (SIGKILL, so no
// goodbye reaches anyone) is noticed within fastFail by whoever is left.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dtcall/dtcall/client"
)

const msgLostServer = "the call dropped: lost the server"

// TestKilledQUICClientDropsPeer: a dtcall process answers in QUIC stream
// or datagram mode, a peer calls it and media flows both ways; then the
// dtcall process is SIGKILLed. The peer must get call|drop (package
// client: Dropped) within fastFail of the kill. Peers: package client
// in-process over TCP, QUIC stream mode and QUIC datagram mode, and the
// Java client (android2017 profile) in agent mode.
func TestKilledQUICClientDropsPeer(t *testing.T) {
	t.Parallel()
	type run struct{ dtcallTr, peer string }
	var runs []run
	var names []string
	for _, tr := range []string{"quic", "datagram"} {
		for _, peer := range []string{"go-tcp", "go-quic", "go-dgram", "android2017"} {
			runs = append(runs, run{tr, peer})
			names = append(names, fmt.Sprintf("k%da", len(runs)), fmt.Sprintf("k%db", len(runs)))
		}
	}
	r := newRig(t, names...)
	jdk := needJDK(t)
	classes := compileClient(t, jdk, t.TempDir())
	srv := r.server(t)
	media := randomFile(t, t.TempDir(), "long.bin", 60*50*frameSize) // a minute of media

	var mu sync.Mutex
	figures := map[string]time.Duration{}
	t.Cleanup(func() {
		var b strings.Builder
		for _, rn := range runs {
			k := "dtcall_" + rn.dtcallTr + "_peer_" + rn.peer
			d, ok := figures[k]
			switch {
			case !ok:
				fmt.Fprintf(&b, "\n  %-40s no figure", k)
			case d < 0:
				fmt.Fprintf(&b, "\n  %-40s no drop within %v", k, failBound)
			default:
				fmt.Fprintf(&b, "\n  %-40s drop %v after the kill", k, d.Round(time.Millisecond))
			}
		}
		t.Logf("killed dtcall → peer told call|drop:%s", b.String())
	})
	for i, rn := range runs {
		name := "dtcall_" + rn.dtcallTr + "_peer_" + rn.peer
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			victim, peer := r.acct(fmt.Sprintf("k%da", i+1)), r.acct(fmt.Sprintf("k%db", i+1))
			d := startAnswering(t, r, srv, rn.dtcallTr, victim, media)
			var took time.Duration
			if rn.peer == "android2017" {
				took = killedWithJavaPeer(t, srv, r.cert, jdk.java, classes, d, victim, peer)
			} else {
				tr := map[string]client.Transport{"go-tcp": client.TCP, "go-quic": client.QUIC, "go-dgram": client.QUICDatagram}[rn.peer]
				took = killedWithGoPeer(t, srv, r.cert, tr, d, victim, peer)
			}
			mu.Lock()
			figures[name] = took
			mu.Unlock()
			switch {
			case took < 0:
				t.Errorf("the peer was not told call|drop within %v of the SIGKILL of %s", failBound, d.name)
			case took > fastFail:
				t.Errorf("the peer was told call|drop %v after the SIGKILL of %s, want at most %v",
					took.Round(time.Millisecond), d.name, fastFail)
			default:
				t.Logf("the peer was told call|drop %v after the SIGKILL of %s", took.Round(time.Millisecond), d.name)
			}
		})
	}
}

// startAnswering starts victim's dtcall answering over tr, playing media
// and recording, and waits until it waits for a call.
func startAnswering(t *testing.T, r *rig, srv *server, tr string, victim account, media string) *proc {
	t.Helper()
	p := r.dtcall(t, srv, tr, victim, "answer", "--play", media, "--record", filepath.Join(t.TempDir(), "heard.bin"))
	p.waitLine(t, msgWaiting, lineTimeout)
	return p
}

// killDtcall SIGKILLs d's process and waits until it is gone; it returns
// when the signal was sent.
func killDtcall(t *testing.T, d *proc) time.Time {
	t.Helper()
	at := d.signal(t, syscall.SIGKILL)
	if !d.waitExit(10 * time.Second) {
		t.Fatalf("%s still runs 10 s after SIGKILL", d.name)
	}
	return at
}

// killedWithGoPeer: a package client peer over tr calls d, they talk, d is
// killed; it returns how long after the kill the peer got Dropped, or -1.
func killedWithGoPeer(t *testing.T, srv *server, cert string, tr client.Transport, d *proc, victim, peer account) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Server: "127.0.0.1", CommandPort: srv.cmdPort, MediaPort: srv.mediaPort,
		QUICPort: srv.cmdPort, Transport: tr, PinFile: cert})
	if err != nil {
		t.Fatalf("dial %v: %v", tr, err)
	}
	defer c.Close()
	if err := c.Login(ctx, peer.name, peer.password); err != nil {
		t.Fatalf("%s login: %v", peer.name, err)
	}
	if err := c.RegisterMedia(ctx); err != nil {
		t.Fatalf("%s media: %v", peer.name, err)
	}
	if res, err := c.Call(ctx, victim.name); err != nil || res != client.Available {
		t.Fatalf("%s call %s: %v, %v; want available", peer.name, victim.name, res, err)
	}
	if ev, err := nextEvent(c, 10*time.Second); err != nil || ev.Kind != client.Started || ev.Peer != victim.name {
		t.Fatalf("%s: got %v, %v; want the call with %s started", peer.name, ev, err, victim.name)
	}
	d.waitLine(t, msgUpAnswerer(peer.name), upTimeout)

	// Media both ways for a moment: the peer sends frames and sees
	// dtcall's file arrive.
	m := c.Media()
	for i := range 25 {
		if err := m.WriteMedia(frame(peer.name, victim.name, i)); err != nil {
			t.Fatalf("%s: write media: %v", peer.name, err)
		}
		time.Sleep(framePace)
	}
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = m.ReadMedia(rctx)
	rcancel()
	if err != nil {
		t.Fatalf("%s: no media from %s's dtcall: %v", peer.name, victim.name, err)
	}
	var wg sync.WaitGroup // drains media until the peer closes
	defer wg.Wait()
	defer c.Close()
	wg.Go(func() {
		for {
			if _, err := m.ReadMedia(context.Background()); err != nil {
				return
			}
		}
	})

	killed := killDtcall(t, d)
	ev, err := nextEvent(c, time.Until(killed.Add(failBound)))
	took := time.Since(killed)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return -1
	case err != nil:
		t.Errorf("%s: %v", peer.name, err)
		return -1
	case ev.Kind != client.Dropped || ev.Value != c.SessionID():
		t.Errorf("%s: got %v after the kill, want Dropped with its own session id %s", peer.name, ev, c.SessionID())
		return -1
	}
	return took
}

// nextEvent waits up to d for c's next event.
func nextEvent(c *client.Client, d time.Duration) (client.Event, error) {
	select {
	case ev, ok := <-c.Events():
		if !ok {
			return client.Event{}, fmt.Errorf("command channel ended: %v", c.Err())
		}
		return ev, nil
	case <-time.After(d):
		return client.Event{}, context.DeadlineExceeded
	}
}

// killedWithJavaPeer is killedWithGoPeer with the Java client
// (android2017) as the peer, in agent mode in a JVM of its own.
func killedWithJavaPeer(t *testing.T, srv *server, cert, java, classes string, d *proc, victim, peer account) time.Duration {
	t.Helper()
	ag, do := androidAgent(t, srv, cert, java, classes, peer.name)
	sid := do("login "+peer.name+" "+peer.password, "*")
	do("call "+victim.name, "available")
	do("expect call|start|"+victim.name+" 10000", "")
	d.waitLine(t, msgUpAnswerer(peer.name), upTimeout)
	do(fmt.Sprintf("media-send %s 25", victim.name), "") // dtcall's file flows the other way

	killed := killDtcall(t, d)
	_, err := ag.do(fmt.Sprintf("expect call|drop|%s %d", sid, time.Until(killed.Add(failBound)).Milliseconds()))
	took := time.Since(killed)
	if err != nil {
		if strings.Contains(err.Error(), "no \"call|drop|") && strings.Contains(err.Error(), " within ") {
			return -1
		}
		t.Errorf("java %s: %v", peer.name, err)
		return -1
	}
	return took
}

// TestKilledServerDropsDtcall: two dtcall processes in a call over a
// dtoperator process of their own, which is SIGKILLed mid-call; each
// dtcall must exit 5 within fastFail and say "the call dropped: lost the
// server". Pairs (answerer↔caller): QUIC stream↔stream, datagram↔datagram
// and tcp↔tcp with media flowing both ways (--play, --record), and the
// mixed tcp↔datagram and stream↔tcp in a call without media.
func TestKilledServerDropsDtcall(t *testing.T) {
	t.Parallel()
	type run struct {
		answer, call string
		media        bool
	}
	runs := []run{
		{"quic", "quic", true},
		{"datagram", "datagram", true},
		{"tcp", "tcp", true},
		{"tcp", "datagram", false},
		{"quic", "tcp", false},
	}
	var names []string
	for i := range runs {
		names = append(names, fmt.Sprintf("s%da", i), fmt.Sprintf("s%db", i))
	}
	r := newRig(t, names...)
	media := randomFile(t, t.TempDir(), "long.bin", 60*50*frameSize) // a minute of media

	var mu sync.Mutex
	var figures []string
	t.Cleanup(func() { t.Logf("dtoperator SIGKILLed mid-call → dtcall exits:\n  %s", strings.Join(figures, "\n  ")) })
	for i, rn := range runs {
		name := rn.answer + "_" + rn.call
		if rn.media {
			name += "_media"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := r.server(t)
			ans, cal := r.acct(fmt.Sprintf("s%da", i)), r.acct(fmt.Sprintf("s%db", i))
			var files func(string) []string
			if rn.media {
				files = func(who string) []string {
					return []string{"--play", media, "--record", filepath.Join(t.TempDir(), who+".bin")}
				}
			} else {
				files = func(string) []string { return nil }
			}
			a := r.dtcall(t, srv, rn.answer, ans, append([]string{"answer"}, files("heardA")...)...)
			a.waitLine(t, msgWaiting, lineTimeout)
			c := r.dtcall(t, srv, rn.call, cal, append([]string{"call", ans.name}, files("heardC")...)...)
			c.waitLine(t, msgUpCaller(ans.name), upTimeout)
			a.waitLine(t, msgUpAnswerer(cal.name), upTimeout)
			time.Sleep(time.Second) // mid-call: media flows for a while

			killed := time.Now()
			if err := srv.cmd.Process.Kill(); err != nil {
				t.Fatalf("SIGKILL dtoperator: %v", err)
			}
			var took []string
			for _, p := range []*proc{a, c} {
				d := p.mustExit(t, killed, failBound, 5, msgLostServer)
				switch {
				case d < 0:
					took = append(took, fmt.Sprintf("%s: still running after %v", p.name, failBound))
				default:
					took = append(took, fmt.Sprintf("%s: %s after %v", p.name, p.status(), d.Round(time.Millisecond)))
					if d > fastFail {
						t.Errorf("%s exited %v after the SIGKILL of the server, want at most %v",
							p.name, d.Round(time.Millisecond), fastFail)
					}
				}
			}
			t.Logf("after the SIGKILL of dtoperator: %s", strings.Join(took, "; "))
			mu.Lock()
			figures = append(figures, name+": "+strings.Join(took, "; "))
			mu.Unlock()
		})
	}
}

// androidAgent starts a Java agent host against srv with one android2017
// agent, stopped at the end of t, and returns it with do: run cmd on it
// and check the result is want ("*" for any), failing t otherwise.
func androidAgent(t *testing.T, srv *server, cert, java, classes, who string) (agent, func(cmd, want string) string) {
	t.Helper()
	h, err := startJavaHost(&matrixEnv{srv: srv, certFile: cert, java: java, classes: classes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if why := h.stop(); why != "" {
			t.Errorf("java agent host: %s", why)
		}
	})
	ag, err := h.newAgent("android2017")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ag.close)
	do := func(cmd, want string) string {
		t.Helper()
		got, err := ag.do(cmd)
		if err != nil {
			t.Fatalf("java %s %q: %v", who, cmd, err)
		}
		if want != "*" && got != want {
			t.Fatalf("java %s %q: got %q, want %q", who, cmd, got, want)
		}
		return got
	}
	return ag, do
}
