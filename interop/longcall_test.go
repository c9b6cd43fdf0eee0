package interop

// A two-minute call between a deployed-style Java client and a QUIC
// datagram client: every frame arrives, in order, and nothing else happens.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dtcall/dtcall/client"
)

const (
	longCallFrames = 6000 // 2 minutes at 50 frames a second, each way
	longCallTime   = longCallFrames * framePace
)

// TestJavaToDatagramTwoMinuteCall: the Java client (agent mode, android2017
// profile, legacy TLS) calls a package client in QUIC datagram mode; they
// talk for 2 minutes, 6000 frames of 32 bytes each way at 50 a second, and
// each side checks every frame for content and order: no loss, no
// duplicate, no reordering. Neither side may be told anything (call|drop or
// any other notice) during the call; then the Go side hangs up and the Java
// side is told call|end. (The server used to close a datagram-mode media
// channel after ~30 s.)
func TestJavaToDatagramTwoMinuteCall(t *testing.T) {
	t.Parallel()
	jdk := needJDK(t)
	r := newRig(t, "lj", "lg")
	classes := compileClient(t, jdk, t.TempDir())
	srv := r.server(t)
	jv, gv := r.acct("lj"), r.acct("lg")

	ag, java := androidAgent(t, srv, r.cert, jdk.java, classes, jv.name)

	ctx, cancel := context.WithTimeout(context.Background(), longCallTime+3*time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Server: "127.0.0.1", CommandPort: srv.cmdPort, MediaPort: srv.mediaPort,
		QUICPort: srv.cmdPort, Transport: client.QUICDatagram, PinFile: r.cert})
	if err != nil {
		t.Fatalf("dial QUIC datagram: %v", err)
	}
	defer c.Close()
	if err := c.Login(ctx, gv.name, gv.password); err != nil {
		t.Fatalf("%s login: %v", gv.name, err)
	}
	if err := c.RegisterMedia(ctx); err != nil {
		t.Fatalf("%s media: %v", gv.name, err)
	}
	java("login "+jv.name+" "+jv.password, "*")
	if got := java("tls", "*"); got != "TLSv1.2 "+suiteDHE {
		t.Errorf("android2017 negotiated %q, want TLSv1.2 %s", got, suiteDHE)
	}

	java("call "+gv.name, "available")
	if ev, err := nextEvent(c, 10*time.Second); err != nil || ev.Kind != client.Incoming || ev.Peer != jv.name {
		t.Fatalf("%s: got %v, %v; want %s calling", gv.name, ev, err, jv.name)
	}
	if err := c.Accept(ctx, jv.name); err != nil {
		t.Fatalf("%s accept: %v", gv.name, err)
	}
	java("expect call|start|"+gv.name+" 10000", "")
	if ev, err := nextEvent(c, 10*time.Second); err != nil || ev.Kind != client.Started || ev.Peer != jv.name {
		t.Fatalf("%s: got %v, %v; want the call with %s started", gv.name, ev, err, jv.name)
	}

	// The call: the Java agent talks (its own sender thread and reader) while
	// the Go side sends on one goroutine and reads on another.
	begin := time.Now()
	callCtx, stopCall := context.WithTimeout(ctx, longCallTime+time.Minute)
	defer stopCall()
	type javaResult struct {
		got string
		err error
	}
	javaDone := make(chan javaResult, 1)
	go func() { // waited for below on every path
		ja := ag.(*javaAgent)
		got, err := ja.h.sendWithin(fmt.Sprintf("%s media-talk %s %d", ja.id, gv.name, longCallFrames),
			longCallTime+time.Minute)
		javaDone <- javaResult{got, err}
	}()
	m := c.Media()
	var wg sync.WaitGroup
	var sent, received, datagrams, largest int
	var sendErr, recvErr error
	wg.Go(func() {
		tick := time.NewTicker(framePace)
		defer tick.Stop()
		for sent < longCallFrames {
			if err := m.WriteMedia(frame(gv.name, jv.name, sent)); err != nil {
				sendErr = fmt.Errorf("write frame %d: %w", sent, err)
				stopCall()
				return
			}
			sent++
			select {
			case <-tick.C:
			case <-callCtx.Done():
				if sent < longCallFrames {
					sendErr = fmt.Errorf("stopped after %d frames", sent)
				}
				return
			}
		}
	})
	wg.Go(func() {
		var buf []byte // received and not yet checked: datagrams may hold several frames, or part of one
		for received < longCallFrames {
			p, err := m.ReadMedia(callCtx)
			if err != nil {
				recvErr = fmt.Errorf("%w (have %d bytes of the next frame)", err, len(buf))
				stopCall()
				return
			}
			datagrams++
			largest = max(largest, len(p))
			buf = append(buf, p...)
			for len(buf) >= frameSize && received < longCallFrames {
				if got, want := buf[:frameSize], frame(jv.name, gv.name, received); !bytes.Equal(got, want) {
					recvErr = fmt.Errorf("frame %d is %q, want %q", received, got, want)
					stopCall()
					return
				}
				buf = buf[frameSize:]
				received++
			}
		}
		if len(buf) > 0 {
			recvErr = fmt.Errorf("%d bytes after the last frame: %q", len(buf), buf)
		}
	})
	goDone := make(chan struct{})
	go func() { wg.Wait(); close(goDone) }()

	var jres javaResult
	var notices []string
	events := c.Events()
	javaWait, goWait := javaDone, goDone // nil once done
	for javaWait != nil || goWait != nil {
		select {
		case jres = <-javaWait:
			javaWait = nil
			if jres.err != nil {
				stopCall()
			}
		case <-goWait:
			goWait = nil
		case ev, ok := <-events:
			if !ok {
				notices = append(notices, fmt.Sprintf("command channel ended: %v", c.Err()))
				events = nil
			} else {
				notices = append(notices, fmt.Sprintf("%v at %.1f s", ev, time.Since(begin).Seconds()))
			}
			stopCall()
		}
	}
	took := time.Since(begin)
	javaCounts := jres.got // "sent=N received=M"
	if jres.err != nil {
		javaCounts = "failed: " + jres.err.Error()
	}

	t.Logf("2-minute call, android2017 (legacy TLS) ↔ QUIC datagram, media for %.1f s:\n"+
		"  java (android2017): %s\n"+
		"  go (datagram): sent=%d received=%d, in %d datagrams of up to %d bytes; %d dropped by the client",
		took.Seconds(), javaCounts, sent, received, datagrams, largest, m.Dropped())
	if jres.err != nil {
		t.Errorf("java %s media-talk: %v", jv.name, jres.err)
	} else if want := fmt.Sprintf("sent=%d received=%d", longCallFrames, longCallFrames); jres.got != want {
		t.Errorf("java %s media-talk: %q, want %q", jv.name, jres.got, want)
	}
	if sendErr != nil {
		t.Errorf("%s media sender: %v", gv.name, sendErr)
	}
	if recvErr != nil {
		t.Errorf("%s received %d of %d frames: %v", gv.name, received, longCallFrames, recvErr)
	}
	if n := m.Dropped(); n > 0 {
		t.Errorf("%s's client dropped %d datagrams", gv.name, n)
	}
	if len(notices) > 0 {
		t.Errorf("%s was told something during the call: %v", gv.name, notices)
	}
	if t.Failed() { // what was the Java side told?
		if _, err := ag.do("quiet"); err != nil {
			t.Logf("java %s after the call: %v", jv.name, err)
		}
		return
	}

	// Nothing reached either side during the call; then a normal hang-up.
	java("quiet", "")
	if err := goQuiet(ctx, c); err != nil {
		t.Fatalf("%s after the call: %v", gv.name, err)
	}
	if err := c.End(ctx, jv.name); err != nil {
		t.Fatalf("%s end: %v", gv.name, err)
	}
	java("expect call|end|"+gv.name+" 5000", "")
	java("quiet", "")
	if err := goQuiet(ctx, c); err != nil {
		t.Fatalf("%s after the hang-up: %v", gv.name, err)
	}
}

// goQuiet checks that no notification waits for c: a lookup's answer
// comes after any the server sent before it.
func goQuiet(ctx context.Context, c *client.Client) error {
	if _, err := c.Lookup(ctx, "quiet-barrier"); err != nil {
		return err
	}
	select {
	case ev, ok := <-c.Events():
		if !ok {
			return errors.New("command channel ended: " + fmt.Sprint(c.Err()))
		}
		return fmt.Errorf("unexpected %v", ev)
	default:
		return nil
	}
}
