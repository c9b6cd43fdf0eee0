package core

import "sync/atomic"

// DropReason says why a media chunk was not delivered.
type DropReason int

// Drop reasons, as in DERP's relay.
const (
	DropQueueHead  DropReason = iota // oldest chunk dropped to make room
	DropQueueTail                    // new chunk dropped: queue still full
	DropPeerGone                     // the peer has no media connection
	DropWriteError                   // lost with a failed or timed-out write
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{"queue_head", "queue_tail", "peer_gone", "write_error"}

func (r DropReason) String() string { return dropReasonNames[r] }

// metrics are the core's counters; all fields are updated atomically.
type metrics struct {
	sessions        atomic.Int64
	activeCalls     atomic.Int64
	loginsOK        atomic.Int64
	loginsRefused   atomic.Int64
	invalid         atomic.Int64
	callsStarted    atomic.Int64
	mediaBytesIn    atomic.Int64
	mediaBytesOut   atomic.Int64
	writeTimeouts   atomic.Int64
	slowConsumers   atomic.Int64
	unresponsive    atomic.Int64
	directWrites    atomic.Int64
	drops           [numDropReasons]atomic.Int64
	maxQueueDelayNs atomic.Int64
}

// Stats is a snapshot of the core's counters, for metrics publishing.
type Stats struct {
	Sessions        int64            // logged-in sessions now
	ActiveCalls     int64            // answered calls now
	LoginsOK        int64            // successful logins since start
	LoginsRefused   int64            // refused logins since start
	Invalid         int64            // commands answered with resp|invalid
	CallsStarted    int64            // calls answered since start
	MediaBytesIn    int64            // media bytes read from clients
	MediaBytesOut   int64            // media bytes written to clients
	WriteTimeouts   int64            // reply or media writes that failed
	SlowConsumers   int64            // clients cut off for a full reply queue
	Unresponsive    int64            // clients closed: silent during a call (transport.Prober)
	DirectWrites    int64            // media writes made by the sender's goroutine
	Drops           map[string]int64 // media chunks dropped, by reason
	MaxQueueDelayNs int64            // longest time a media chunk waited in a queue
}

// Stats returns a snapshot of the core's counters.
func (s *Server) Stats() Stats {
	m := &s.metrics
	st := Stats{
		Sessions:        m.sessions.Load(),
		ActiveCalls:     m.activeCalls.Load(),
		LoginsOK:        m.loginsOK.Load(),
		LoginsRefused:   m.loginsRefused.Load(),
		Invalid:         m.invalid.Load(),
		CallsStarted:    m.callsStarted.Load(),
		MediaBytesIn:    m.mediaBytesIn.Load(),
		MediaBytesOut:   m.mediaBytesOut.Load(),
		WriteTimeouts:   m.writeTimeouts.Load(),
		SlowConsumers:   m.slowConsumers.Load(),
		Unresponsive:    m.unresponsive.Load(),
		DirectWrites:    m.directWrites.Load(),
		Drops:           make(map[string]int64, numDropReasons),
		MaxQueueDelayNs: m.maxQueueDelayNs.Load(),
	}
	for r := range numDropReasons {
		st.Drops[r.String()] = m.drops[r].Load()
	}
	return st
}

func (m *metrics) drop(r DropReason) { m.drops[r].Add(1) }

func (m *metrics) queueDelay(ns int64) {
	for {
		cur := m.maxQueueDelayNs.Load()
		if ns <= cur || m.maxQueueDelayNs.CompareAndSwap(cur, ns) {
			return
		}
	}
}
