package client_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dtcall/dtcall/client"
)

// fakeServer plays the server on one end of a net.Pipe: each client Write
// is one Read here, and each write here one message there.
type fakeServer struct {
	t    *testing.T
	conn net.Conn
}

func newFake(t *testing.T) (*fakeServer, *client.Client) {
	cconn, sconn := net.Pipe()
	c := client.NewForTest(cconn, "alice", "77", 2*time.Second)
	t.Cleanup(func() { c.Close(); sconn.Close() })
	return &fakeServer{t: t, conn: sconn}, c
}

// read returns the next command without its timestamp and session id
// ("lookup|bob").
func (f *fakeServer) read() string {
	f.t.Helper()
	buf := make([]byte, 1024)
	f.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := f.conn.Read(buf)
	if err != nil {
		f.t.Fatalf("fake server: read: %v", err)
	}
	fs := strings.Split(string(buf[:n]), "|")
	if len(fs) != 4 || fs[3] != "77" {
		f.t.Fatalf("fake server: bad command %q", buf[:n])
	}
	return fs[1] + "|" + fs[2]
}

func (f *fakeServer) expect(cmd string) {
	f.t.Helper()
	if got := f.read(); got != cmd {
		f.t.Fatalf("fake server: got %q, want %q", got, cmd)
	}
}

// say writes one message with the current server time.
func (f *fakeServer) say(msg string) { f.sayAt(time.Now(), msg) }

func (f *fakeServer) sayAt(at time.Time, msg string) {
	f.t.Helper()
	f.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := f.conn.Write([]byte(strconv.FormatInt(at.Unix(), 10) + "|" + msg)); err != nil {
		f.t.Fatalf("fake server: write: %v", err)
	}
}

// async runs f in a goroutine and returns its error on the channel.
func async(f func() error) chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func await(t *testing.T, ch chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("request did not return")
	}
	return nil
}

// A notification that arrives between a request and its reply is an
// event, not the reply.
func TestNotificationBetweenRequestAndReply(t *testing.T) {
	f, c := newFake(t)
	var exists bool
	done := async(func() (err error) {
		exists, err = c.Lookup(context.Background(), "bob")
		return err
	})
	f.expect("lookup|bob")
	f.say("ring|incoming|carol")
	f.say("lookup|bob|exists")
	if err := await(t, done); err != nil || !exists {
		t.Fatalf("lookup: %v, %v", exists, err)
	}
	expectEvent(t, c, client.Incoming, "carol")
}

// accept, reject, end and timeout are answered only when refused; the
// barrier lookup after them tells success from refusal.
func TestSilentCommands(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()

	done := async(func() error { return c.Accept(ctx, "carol") })
	f.expect("accept|carol")
	f.expect("lookup|alice")
	f.say("call|start|carol")
	f.say("lookup|alice|exists")
	if err := await(t, done); err != nil {
		t.Fatalf("accept: %v", err)
	}
	expectEvent(t, c, client.Started, "carol")

	done = async(func() error { return c.End(ctx, "dave") })
	f.expect("end|dave")
	f.expect("lookup|alice")
	f.say("resp|invalid|command\n")
	f.say("lookup|alice|exists")
	expectRefused(t, await(t, done), "end")

	// The drop notice names the session; the client fills in the peer.
	f.say("call|drop|77")
	if ev := expectEvent(t, c, client.Dropped, "carol"); ev.Value != "77" {
		t.Fatalf("drop value %q", ev.Value)
	}
}

// A request given up on keeps its place: its late reply is not taken for
// the next request's.
func TestLateReplyKeepsOrder(t *testing.T) {
	f, c := newFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := async(func() error { _, err := c.Lookup(ctx, "bob"); return err })
	f.expect("lookup|bob")
	if err := await(t, done); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lookup: %v", err)
	}
	var res client.CallResult
	done = async(func() (err error) { res, err = c.Call(context.Background(), "bob"); return err })
	f.expect("call|bob")
	f.say("lookup|bob|doesntexist") // the late reply of the lookup
	f.say("ring|busy|bob")
	if err := await(t, done); err != nil || res != client.Busy {
		t.Fatalf("call: %v, %v", res, err)
	}
}

// A refusal tells how far the clocks are apart.
func TestRefusalReportsClockSkew(t *testing.T) {
	f, c := newFake(t)
	done := async(func() error { _, err := c.Call(context.Background(), "bob"); return err })
	f.expect("call|bob")
	f.sayAt(time.Now().Add(10*time.Minute), "resp|invalid|command\n")
	err := await(t, done)
	var re *client.RefusedError
	if !errors.As(err, &re) || re.Skew > -9*time.Minute || !strings.Contains(err.Error(), "clock") {
		t.Fatalf("got %v", err)
	}
}

// Malformed messages are dropped; a request pending when the server goes
// away fails, and Events closes.
func TestServerGone(t *testing.T) {
	f, c := newFake(t)
	done := async(func() error { _, err := c.Lookup(context.Background(), "bob"); return err })
	f.expect("lookup|bob")
	f.conn.Write([]byte("garbage"))
	f.conn.Write([]byte("1|2|3|4|5"))
	f.conn.Close()
	if err := await(t, done); err == nil || errors.Is(err, client.ErrClosed) {
		t.Fatalf("lookup: %v", err)
	}
	if _, ok := <-c.Events(); ok {
		t.Fatal("event from garbage")
	}
	if c.Err() == nil {
		t.Fatal("no error")
	}
}

// An application that does not read events loses the oldest, never the
// replies.
func TestUnreadEventsDoNotBlockReplies(t *testing.T) {
	f, c := newFake(t)
	done := async(func() error { _, err := c.Lookup(context.Background(), "bob"); return err })
	f.expect("lookup|bob")
	for i := range 200 {
		f.say("ring|incoming|u" + strconv.Itoa(i))
	}
	f.say("lookup|bob|exists")
	if err := await(t, done); err != nil {
		t.Fatal(err)
	}
	ev := <-c.Events()
	if ev.Peer == "u0" {
		t.Fatal("oldest event kept")
	}
}
