package core

import "sync"

// onDemand runs a connection's writer goroutine only while it has work,
// so that an idle connection costs no writer: start runs it unless it runs
// already or the connection is ending, the writer ends itself through
// retire when it finds nothing to do, and stop keeps it from starting
// again and waits for the one running. Its lock is never held during I/O:
// start may be called with Server.mu held.
type onDemand struct {
	mu      sync.Mutex
	running bool
	stopped bool
	wg      sync.WaitGroup
}

// start runs f in a goroutine unless one runs or stop was called.
func (o *onDemand) start(f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.running || o.stopped {
		return
	}
	o.running = true
	o.wg.Go(f)
}

// retire ends the running goroutine's turn if idle() holds; it reports
// whether it did. idle is asked under the lock, so work queued after it
// (whose start follows) gets a new goroutine.
func (o *onDemand) retire(idle func() bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !idle() {
		return false
	}
	o.running = false
	return true
}

// stop keeps the goroutine from starting again and waits for the one
// running.
func (o *onDemand) stop() {
	o.mu.Lock()
	o.stopped = true
	o.mu.Unlock()
	o.wg.Wait()
}

// isRunning reports whether the goroutine runs now.
func (o *onDemand) isRunning() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.running
}
