package core

import "sync"

// replies is a command connection's reply queue: first in, first out, at
// most max messages. It holds no memory while empty, where a channel of
// ReplyQueue slots would hold 1.5 KiB for each idle client for as long as
// it stays connected. Its methods never block and are safe for concurrent
// use.
type replies struct {
	// more has a token when a message was queued since the reader last
	// took the token; the write loop waits on it.
	more chan struct{}
	max  int

	mu sync.Mutex
	q  [][]byte // nil while empty
}

func newReplies(max int) replies {
	return replies{more: make(chan struct{}, 1), max: max}
}

// push queues msg unless max messages are queued; it reports whether it did.
func (r *replies) push(msg []byte) bool {
	r.mu.Lock()
	if len(r.q) >= r.max {
		r.mu.Unlock()
		return false
	}
	r.q = append(r.q, msg)
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default: // a token is there already
	}
	return true
}

// pop takes the oldest message, if any.
func (r *replies) pop() (msg []byte, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.q) == 0 {
		return nil, false
	}
	msg, r.q[0] = r.q[0], nil
	r.q = r.q[1:]
	if len(r.q) == 0 {
		r.q = nil // the next message allocates afresh
	}
	return msg, true
}

// len returns how many messages are queued.
func (r *replies) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.q)
}
