package tcp_test

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/transport/tcp"
)

// Every row of PROTOCOL.md's reply table, over each kind of TLS client, on
// one node and on two with split media.
//
// The protocol tests run in both layouts (eachLayout): TestReplyTable,
// TestDropOnMediaLoss, TestRefusals, TestOldServerBugsFixed,
// TestKeepaliveInEveryState, TestMediaAndReRegistration,
// TestMediaFromAnotherIPRefused and TestRepliesAreSeparateRecords. The
// replies must be the same, byte for byte, in both.
func TestReplyTable(t *testing.T) {
	for _, l := range layouts {
		for _, kind := range []tlsKind{modern, ecdhe12, android17} {
			t.Run(l.String()+"/"+kind.String(), func(t *testing.T) {
				t.Parallel()
				replyTable(t, l, kind)
			})
		}
	}
}

func replyTable(t *testing.T, l layout, kind tlsKind) {
	e := l.start(t, core.Config{MediaLossGrace: time.Millisecond}, tcp.Config{})
	a, b := e.online("alice", kind), e.online("bob", kind)

	// lookup
	a.say("lookup", "bob")
	a.expect("lookup|bob|exists")
	a.say("lookup", "zed")
	a.expect("lookup|zed|doesntexist")
	// call: unknown, offline, himself
	a.say("call", "zed")
	a.expect("ring|notavailable|zed")
	a.say("call", "carol")
	a.expect("ring|notavailable|carol")
	a.say("call", "alice")
	a.expect("ring|busy|alice")
	// call: logged in without media
	c := e.connect("carol", kind)
	c.login("pw-carol")
	a.say("call", "carol")
	a.expect("ring|notavailable|carol")
	// ... and that user may not call (no media yet)
	c.say("call", "alice")
	c.expect(invalid)
	c.registerMedia()

	// ring, busy while ringing, reject
	a.say("call", "bob")
	a.expect("ring|available|bob")
	b.expect("ring|incoming|alice")
	c.say("call", "bob")
	c.expect("ring|busy|bob")
	b.say("reject", "alice")
	a.expect("call|reject|bob")
	b.quiet()

	// timeout
	a.say("call", "bob")
	a.expect("ring|available|bob")
	b.expect("ring|incoming|alice")
	a.say("timeout", "bob")
	b.expect("ring|timeout|alice")
	a.quiet()

	// caller cancels while it rings: end
	a.say("call", "bob")
	a.expect("ring|available|bob")
	b.expect("ring|incoming|alice")
	a.say("end", "bob")
	b.expect("call|end|alice")
	a.quiet()

	// accept; busy in a call; end of an active call
	call(t, a, b)
	c.say("call", "alice")
	c.expect("ring|busy|alice")
	b.say("end", "alice")
	a.expect("call|end|bob")
	b.quiet()

	// accept/reject/end/timeout that match no call
	for _, cmd := range []string{"accept", "reject", "end", "timeout"} {
		a.say(cmd, "bob")
		a.expect(invalid)
	}

	// the other party's command connection dies in a call: drop
	call(t, a, b)
	b.cmd.Close()
	a.expect("call|drop|" + a.sid)

	// ... while ringing: end
	a.say("call", "carol")
	a.expect("ring|available|carol")
	c.expect("ring|incoming|alice")
	c.cmd.Close()
	a.expect("call|end|carol")
	a.quiet()
}

// The media connection of one party dies in a call: the other is told at
// once, not on its next packet.
func TestDropOnMediaLoss(t *testing.T) {
	eachLayout(t, func(t *testing.T, l layout) {
		e := l.start(t, core.Config{MediaLossGrace: time.Millisecond}, tcp.Config{})
		a, b := e.online("alice", modern), e.online("bob", android17)
		call(t, a, b)
		b.media.Close()
		a.expect("call|drop|" + a.sid)
		b.quiet() // bob is still logged in, told nothing
	})
}

func TestRefusals(t *testing.T) {
	eachLayout(t, func(t *testing.T, l layout) {
		e := l.start(t, core.Config{}, tcp.Config{})
		a := e.online("alice", modern)
		old := strconv.FormatInt(time.Now().Add(-6*time.Minute).Unix(), 10)
		ahead := strconv.FormatInt(time.Now().Add(6*time.Minute).Unix(), 10)
		for _, msg := range []string{
			old + "|lookup|bob|" + a.sid,          // expired timestamp
			ahead + "|lookup|bob|" + a.sid,        // from the future
			now() + "|lookup|bob|" + a.sid + "|x", // extra field
			now() + "|lookup||" + a.sid,           // empty field
			now() + "|lookup|bob|" + a.sid + "x",  // trailing garbage
			now() + "x|lookup|bob|" + a.sid,       // trailing garbage
			now() + "|lookup|bob|42",              // unknown session
			now() + "|dance|bob|" + a.sid,         // unknown command: old server said nothing
			now() + "|lookup|bob",                 // three fields
			"\x00\xff",                            // garbage
		} {
			a.send(msg)
			a.expect(invalid)
		}
		// A valid session presented on another connection.
		b := e.online("bob", modern)
		b.send(now() + "|lookup|alice|" + a.sid)
		b.expect(invalid)
		// Before login; wrong password; unknown user.
		x := e.connect("mallory", modern)
		x.send(now() + "|lookup|bob|" + a.sid)
		x.expect(invalid)
		x.send(now() + "|login|alice|wrong")
		x.expect(invalid)
		x.send(now() + "|login|mallory|x")
		x.expect(invalid)
		// Stray 'D's before the timestamp are stripped.
		a.send("DD" + now() + "|lookup|bob|" + a.sid)
		a.expect("lookup|bob|exists")
	})
}

// The bugs of the old server that must not come back.
func TestOldServerBugsFixed(t *testing.T) {
	eachLayout(t, func(t *testing.T, l layout) {
		t.Run("wrong password does not kick the online user", func(t *testing.T) {
			e := l.start(t, core.Config{}, tcp.Config{})
			a, b := e.online("alice", modern), e.online("bob", modern)
			x := e.connect("alice", android17)
			x.send(now() + "|login|alice|wrong")
			x.expect(invalid)
			call(t, a, b) // both of alice's connections still work
			a.sendMedia(frames(0, 5))
			if got := b.readMedia(5 * 32); !bytes.Equal(got, frames(0, 5)) {
				t.Fatal("media garbled")
			}
		})
		t.Run("relogin closes the old connections and the new session works", func(t *testing.T) {
			e := l.start(t, core.Config{}, tcp.Config{})
			old, b := e.online("alice", modern), e.online("bob", modern)
			fresh := e.online("alice", android17)
			if fresh.sid == old.sid {
				t.Fatal("relogin handed out the old session id")
			}
			expectClosed(t, old.cmd)
			expectClosed(t, old.media)
			call(t, fresh, b)
			b.sendMedia(frames(0, 3))
			if got := fresh.readMedia(3 * 32); !bytes.Equal(got, frames(0, 3)) {
				t.Fatal("media garbled")
			}
			// The dead session id is refused.
			b.send(now() + "|lookup|alice|" + old.sid)
			b.expect(invalid)
		})
		t.Run("caller cannot accept his own call", func(t *testing.T) {
			e := l.start(t, core.Config{}, tcp.Config{})
			a, b := e.online("alice", modern), e.online("bob", modern)
			a.say("call", "bob")
			a.expect("ring|available|bob")
			b.expect("ring|incoming|alice")
			a.say("accept", "bob")
			a.expect(invalid)
			b.quiet()
		})
		t.Run("unknown command is answered invalid", func(t *testing.T) {
			e := l.start(t, core.Config{}, tcp.Config{})
			a := e.online("alice", modern)
			a.say("hello", "bob")
			a.expect(invalid)
		})
	})
}

// expectClosed waits for the server to close c.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1024)
	for range 100 {
		_, err := c.Read(buf)
		switch {
		case err == nil:
			continue
		case isTimeout(err):
			t.Fatal("connection still open")
		default:
			return
		}
	}
	t.Fatal("connection still sending")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A "D" record is ignored on both connections in every state, and never
// relayed to the peer's media.
func TestKeepaliveInEveryState(t *testing.T) {
	eachLayout(t, func(t *testing.T, l layout) {
		e := l.start(t, core.Config{}, tcp.Config{})
		a := e.connect("alice", android17)
		a.send("D") // before login
		a.login("pw-alice")
		a.send("D")
		b := e.online("bob", modern)
		m, err := e.dial(a.mediaAddr(), android17, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		m.Write([]byte("D")) // before registration
		a.registerMediaOn(m)
		a.media.Write([]byte("D")) // idle
		a.say("call", "bob")
		a.expect("ring|available|bob")
		b.expect("ring|incoming|alice")
		a.send("D") // ringing
		b.send("D")
		a.media.Write([]byte("D"))
		b.say("accept", "alice")
		a.expect("call|start|bob")
		b.expect("call|start|alice")
		a.send("D") // in a call
		b.send("D")
		for i := range 10 {
			a.sendMedia([]byte("D"))
			a.sendMedia(frames(i, 1))
			b.sendMedia([]byte("D"))
		}
		if got := b.readMedia(10 * 32); !bytes.Equal(got, frames(0, 10)) {
			t.Fatalf("bob's media %q: keepalives relayed or frames lost", got)
		}
		a.quiet()
		b.quiet()
		// Nothing arrived at alice: bob sent only keepalives.
		a.media.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := a.media.Read(make([]byte, 64)); n > 0 || !isTimeout(err) {
			t.Fatalf("alice got %d media bytes (%v): bob's keepalives were relayed", n, err)
		}
	})
}

// Media is relayed byte-exact both ways during a call, discarded outside
// it, and a re-registered media connection carries the next call. Small
// and big records mix, so direct and queued writes alternate.
func TestMediaAndReRegistration(t *testing.T) {
	eachLayout(t, func(t *testing.T, l layout) {
		e := l.start(t, core.Config{}, tcp.Config{})
		a, b := e.online("alice", android17), e.online("bob", modern)
		a.sendMediaOutsideCall([]byte("before the call: discarded"))
		for round := range 3 {
			call(t, a, b)
			// Records of many sizes, up to the TLS maximum: never cut, never
			// reordered. Sent in groups that fit the relay's queue, which drops
			// the oldest media when a burst outruns the receiver.
			for group := range 4 {
				var sent bytes.Buffer
				for i := range 10 {
					rec := bytes.Repeat([]byte{byte('a' + i)}, 1+(group*10+i)*1601%16384)
					sent.Write(rec)
					a.sendMedia(rec)
				}
				if got := b.readMedia(sent.Len()); !bytes.Equal(got, sent.Bytes()) {
					t.Fatalf("round %d: media alice→bob not byte-exact", round)
				}
			}
			b.sendMedia(frames(0, 50))
			if got := a.readMedia(50 * 32); !bytes.Equal(got, frames(0, 50)) {
				t.Fatalf("round %d: media bob→alice not byte-exact", round)
			}
			a.say("end", "bob")
			b.expect("call|end|alice")
			// As deployed clients do: close media, open and register anew.
			a.media.Close()
			b.media.Close()
			a.registerMedia()
			b.registerMedia()
			a.sendMediaOutsideCall([]byte("between calls: discarded"))
		}
		// The small records went out from the sender's goroutine (the socket
		// had room), the big ones through the receiver's queue.
		if e.directWrites() == 0 {
			t.Fatal("no direct media write over TCP")
		}
		// Split: every frame crossed between the nodes, both ways.
		for _, n := range e.nodes {
			if n.Node != nil && (n.Node.Stats().MediaFramesSent == 0 || n.Node.Stats().MediaFramesReceived == 0) {
				t.Fatalf("node %s: no media across the nodes: %+v", n.Node.Node(), n.Node.Stats())
			}
		}
	})
}

// A media registration from another IP than the session's command
// connection binds nothing.
func TestMediaFromAnotherIPRefused(t *testing.T) {
	eachLayout(t, func(t *testing.T, l layout) {
		e := l.start(t, core.Config{}, tcp.Config{})
		a, b := e.online("alice", modern), e.online("bob", modern)
		m, err := e.dial(a.mediaAddr(), modern, "127.0.0.2")
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		m.Write([]byte(now() + "|" + a.sid))
		expectClosed(t, m)
		// Alice's own media is still hers.
		call(t, a, b)
		b.sendMedia(frames(0, 2))
		if got := a.readMedia(64); !bytes.Equal(got, frames(0, 2)) {
			t.Fatal("media garbled")
		}
	})
}

// Each reply is one TLS record: replies never merge, even when several are
// queued at once.
func TestRepliesAreSeparateRecords(t *testing.T) {
	eachLayout(t, func(t *testing.T, l layout) {
		e := l.start(t, core.Config{}, tcp.Config{})
		a := e.online("alice", android17)
		for i := range 20 {
			a.send(now() + "|lookup|u" + strconv.Itoa(i) + "|" + a.sid)
		}
		for i := range 20 {
			a.expect("lookup|u" + strconv.Itoa(i) + "|doesntexist")
		}
	})
}

// A client that connects and says nothing is cut off by the handshake
// deadline; one that shakes hands and never logs in or registers, by the
// login deadline. One node only: the deadlines are the front's, per
// connection, and a cluster adds nothing to them.
func TestDeadlines(t *testing.T) {
	e := start(t, core.Config{LoginTimeout: 200 * time.Millisecond},
		tcp.Config{HandshakeTimeout: 200 * time.Millisecond})
	raw, err := net.Dial("tcp", e.cmdAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("silent client not cut off: %v", err)
	}
	for _, kind := range []tlsKind{modern, android17} {
		p := e.connect("alice", kind)
		expectClosed(t, p.cmd)
		m, err := e.dial(e.mediaAddr, kind, "")
		if err != nil {
			t.Fatal(err)
		}
		expectClosed(t, m)
		m.Close()
	}
}

// Both TLS engines serve, and phones of all kinds call each other. One
// node only: it is about the TLS engines of one front (TestReplyTable runs
// every TLS kind over split connections).
func TestTLSPaths(t *testing.T) {
	e := start(t, core.Config{}, tcp.Config{})
	if !e.front.DHEAvailable() {
		t.Fatal("DHE engine not available in this build (cgo and libssl-dev needed)")
	}
	a, b, c := e.online("alice", android17), e.online("bob", modern), e.online("carol", ecdhe12)
	call(t, a, b)
	a.sendMedia(frames(0, 10))
	b.sendMedia(frames(10, 10))
	if !bytes.Equal(b.readMedia(320), frames(0, 10)) || !bytes.Equal(a.readMedia(320), frames(10, 10)) {
		t.Fatal("media garbled between DHE and TLS 1.3 phones")
	}
	a.say("end", "bob")
	b.expect("call|end|alice")
	call(t, c, a)
	c.sendMedia(frames(0, 4))
	if !bytes.Equal(a.readMedia(128), frames(0, 4)) {
		t.Fatal("media garbled between TLS 1.2 ECDHE and DHE phones")
	}
}

// A receiver that stops reading loses its own media, never slows its
// sender and never delays another call. One node only: it is about one
// process's writers and their timeout (WriteFailures of its core); across
// nodes the NATS leg's own drop-oldest queues are tested in cluster.
func TestSlowReceiverDoesNotDelayOtherCall(t *testing.T) {
	e := start(t, core.Config{MediaWriteTimeout: 500 * time.Millisecond, MediaLossGrace: time.Millisecond}, tcp.Config{})
	a, b := e.online("alice", modern), e.online("bob", modern) // bob never reads media
	c, d := e.online("carol", android17), e.online("dave", modern)
	call(t, a, b)
	call(t, c, d)
	// Alice floods bob, who reads nothing: the server's writes to bob block
	// until the write timeout, then bob loses his media connection.
	flood := bytes.Repeat([]byte("x"), 16000)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		a.media.SetWriteDeadline(time.Now().Add(20 * time.Second))
		for range 2000 { // 32 MB at most, far beyond any socket buffer
			select {
			case <-stop:
				return
			default:
			}
			if _, err := a.media.Write(flood); err != nil {
				return
			}
		}
	})
	// Meanwhile carol and dave talk; every frame arrives in order.
	for i := range 20 {
		c.sendMedia(frames(i*10, 10))
		if got := d.readMedia(320); !bytes.Equal(got, frames(i*10, 10)) {
			t.Fatalf("carol→dave batch %d garbled", i)
		}
		d.sendMedia(frames(i*10, 10))
		if got := c.readMedia(320); !bytes.Equal(got, frames(i*10, 10)) {
			t.Fatalf("dave→carol batch %d garbled", i)
		}
	}
	// Alice is told the call dropped (bob's media was cut off); her own
	// writes never blocked on bob.
	a.expect("call|drop|" + a.sid)
	close(stop)
	wg.Wait()
	st := e.core.Stats()
	if st.WriteFailures == 0 {
		t.Fatalf("no write timeout counted: %+v", st)
	}
}

// A burst of logins with the old (p=16, ~0.7 s each) hashes does not stall
// the media of a call in progress: frames sent while the checks run arrive
// while they still run. One node only: it is about the password checks
// and the relay sharing one process.
func TestLoginBurstDoesNotStallMedia(t *testing.T) {
	if testing.Short() {
		t.Skip("a burst of p=16 scrypt checks takes several seconds")
	}
	e := start(t, core.Config{}, tcp.Config{})
	a, b := e.online("alice", modern), e.online("bob", android17)
	call(t, a, b)
	const burst = 6
	var wg sync.WaitGroup
	done := make(chan struct{})
	var logins sync.WaitGroup
	for i := range burst {
		user := []string{"righthand", "libprohibited", "zapper"}[i%3]
		p := e.connect(user, modern)
		logins.Go(func() {
			p.send(now() + "|login|" + user + "|" + samplePasswords[user])
			p.cmd.SetReadDeadline(time.Now().Add(60 * time.Second))
			p.cmd.Read(make([]byte, 1024))
		})
	}
	wg.Go(func() { logins.Wait(); close(done) })
	var maxGap time.Duration
	last := time.Now()
	for i := range 25 { // 25 frames at 50/s: 0.5 s of voice
		a.sendMedia(frames(i, 1))
		if got := b.readMedia(32); !bytes.Equal(got, frames(i, 1)) {
			t.Fatalf("frame %d garbled", i)
		}
		maxGap = max(maxGap, time.Since(last))
		last = time.Now()
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("the login burst finished before the frames: the test proved nothing")
	default:
	}
	t.Logf("longest frame round trip during the login burst: %v", maxGap)
	wg.Wait()
}

// Closing a connection whose writer is blocked on a client that reads
// nothing (here: bob's old DHE media, when bob logs in again) must not
// stall the core: the close happens under the core's lock. With a write
// timeout of an hour, a close that waited for the blocked writer would hang
// every other client; carol's lookup must still be answered. (recordConn
// closes the socket first; without that, the OpenSSL engine's close waits
// for the writer up to its 250 ms close-notify timeout.) One node only:
// it is about one core's lock and one front's blocked writer.
func TestStalledClientCannotStallCore(t *testing.T) {
	e := start(t, core.Config{MediaWriteTimeout: time.Hour, MediaQueue: 4}, tcp.Config{})
	a, b := e.online("alice", modern), e.online("bob", android17) // bob never reads media
	c := e.online("carol", modern)
	call(t, a, b)
	flood := bytes.Repeat([]byte("x"), 16000)
	a.media.SetWriteDeadline(time.Now().Add(20 * time.Second))
	for i := range 4000 { // up to 64 MB: far beyond the socket buffers toward bob
		if _, err := a.media.Write(flood); err != nil {
			t.Fatalf("alice's media write: %v", err)
		}
		// Once the queue toward bob overflows, the server's writer is
		// blocked on bob's full socket.
		if i%50 == 49 && e.core.Stats().Drops["queue_head"] > 100 {
			break
		}
	}
	if e.core.Stats().Drops["queue_head"] <= 100 {
		t.Fatal("the writer toward bob never blocked")
	}
	// Bob logs in again elsewhere: his old connections are closed under the
	// core's lock while the writer is blocked.
	e.online("bob", modern)
	a.expect("call|drop|" + a.sid)
	c.say("lookup", "alice")
	c.expect("lookup|alice|exists")
}
