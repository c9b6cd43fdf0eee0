package cluster

import "sync"

// fifo is an unbounded first-in first-out queue with one consumer. push
// never blocks (the core calls it with its lock held); the consumer waits
// on ready and takes everything queued at once.
type fifo[T any] struct {
	ready chan struct{} // one token: something was pushed since the last take

	mu    sync.Mutex
	items []T
}

func newFIFO[T any]() *fifo[T] {
	return &fifo[T]{ready: make(chan struct{}, 1)}
}

func (q *fifo[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns and forgets everything queued, in order.
func (q *fifo[T]) take() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}
