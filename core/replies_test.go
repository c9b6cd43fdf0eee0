package core

import (
	"strconv"
	"testing"
)

func TestRepliesQueue(t *testing.T) {
	r := newReplies(3)
	if _, ok := r.pop(); ok {
		t.Fatal("pop from an empty queue")
	}
	for i := range 3 {
		if !r.push([]byte(strconv.Itoa(i))) {
			t.Fatalf("push %d refused", i)
		}
	}
	if r.push([]byte("3")) {
		t.Fatal("a fourth message fit in a queue of 3")
	}
	if len(r.more) != 1 {
		t.Fatal("no wake-up token after pushes")
	}
	for i := range 3 {
		if m, ok := r.pop(); !ok || string(m) != strconv.Itoa(i) {
			t.Fatalf("pop %d: %q %v", i, m, ok)
		}
	}
	if r.q != nil {
		t.Fatalf("an emptied queue keeps %d slots", cap(r.q))
	}
}

// TestIdleReplyQueueHoldsNothing: once its replies are written, a logged-in
// client's reply queue holds no memory.
func TestIdleReplyQueueHoldsNothing(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.login("alice")
	for range 5 {
		c.say("lookup", "bob")
	}
	for range 5 {
		c.expect("lookup|bob|")
	}
	c.cmd.drained(t)
	h.srv.mu.Lock()
	cc := h.srv.conns[c.cmd].cmd
	h.srv.mu.Unlock()
	waitFor(t, func() bool { return !cc.writer.isRunning() })
	cc.out.mu.Lock()
	defer cc.out.mu.Unlock()
	if cc.out.q != nil {
		t.Errorf("an idle client's reply queue keeps %d slots", cap(cc.out.q))
	}
}
