package core

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/dtcall/dtcall/transport"
)

// DropReason says why a media chunk was not delivered.
type DropReason int

// Drop reasons, as in DERP's relay.
const (
	DropQueueHead  DropReason = iota // oldest chunk dropped to make room
	DropQueueTail                    // new chunk dropped: queue still full
	DropPeerGone                     // the peer has no media connection
	DropWriteError                   // lost with a failed or timed-out write
	DropGone                         // left queued when the receiver's media connection closed
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{"queue_head", "queue_tail", "peer_gone", "write_error", "gone"}

func (r DropReason) String() string { return dropReasonNames[r] }

// CallResult is how a call attempt was settled: answered, or why not.
type CallResult int

// Call results. A call to oneself (clients use it to check their media
// registration) is not a call attempt and is not counted.
const (
	CallAnswered     CallResult = iota // the callee accepted
	CallRejected                       // the callee rejected
	CallTimeout                        // the caller gave up ringing
	CallBusy                           // the callee was ringing or in a call
	CallNotAvailable                   // the callee was offline, unknown or without media
	CallCancelled                      // the caller hung up, or a party left, while it rang
	numCallResults
)

var callResultNames = [numCallResults]string{"answered", "rejected", "timeout", "busy", "notavailable", "cancelled"}

func (r CallResult) String() string { return callResultNames[r] }

// EndReason is why an answered call ended.
type EndReason int

// End reasons.
const (
	EndHangup   EndReason = iota // a party sent end
	EndDrop                      // a party's connection died, or it logged in elsewhere
	EndShutdown                  // the server's drain time ran out
	numEndReasons
)

var endReasonNames = [numEndReasons]string{"hangup", "drop", "shutdown"}

func (r EndReason) String() string { return endReasonNames[r] }

// LoginResult is how a login command was answered.
type LoginResult int

// Login results.
const (
	LoginOK             LoginResult = iota // logged in
	LoginBadCredentials                    // wrong password or unknown user
	LoginBanned                            // refused: the source is banned
	LoginThrottled                         // refused: the password could not be checked in time
	LoginInvalid                           // refused before any check (stale, second login, shutting down)
	numLoginResults
)

var loginResultNames = [numLoginResults]string{"ok", "bad_credentials", "banned", "throttled", "invalid"}

func (r LoginResult) String() string { return loginResultNames[r] }

// LoginCheckBuckets are the upper bounds, in seconds, of the login check
// histogram: from cheap hashes (milliseconds) to the old tool's p=16
// hashes under load (seconds).
var LoginCheckBuckets = loginCheckBuckets[:]

var loginCheckBuckets = [...]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// histogram counts durations into LoginCheckBuckets; lock-free.
type histogram struct {
	counts [len(loginCheckBuckets) + 1]atomic.Uint64 // per bucket, the last for +Inf
	sumNs  atomic.Int64
}

func (h *histogram) observe(d time.Duration) {
	i := sort.SearchFloat64s(LoginCheckBuckets, d.Seconds())
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
}

// Histogram is a snapshot of a histogram: Counts[i] is the number of
// observations at most Buckets[i] (cumulative, as Prometheus has them).
type Histogram struct {
	Buckets []float64
	Counts  []uint64
	Count   uint64
	Sum     float64 // seconds
}

func (h *histogram) snapshot() Histogram {
	s := Histogram{Buckets: LoginCheckBuckets, Counts: make([]uint64, len(LoginCheckBuckets))}
	for i := range h.counts {
		s.Count += h.counts[i].Load()
		if i < len(s.Counts) {
			s.Counts[i] = s.Count
		}
	}
	s.Sum = time.Duration(h.sumNs.Load()).Seconds()
	return s
}

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
	writeFailures   atomic.Int64
	slowConsumers   atomic.Int64
	rateLimited     atomic.Int64
	flooders        atomic.Int64
	crowded         atomic.Int64
	unresponsive    atomic.Int64
	directWrites    atomic.Int64
	drops           [numDropReasons]atomic.Int64
	maxQueueDelayNs atomic.Int64
	callResults     [numCallResults]atomic.Int64
	callsEnded      [numEndReasons]atomic.Int64
	logins          [numLoginResults]atomic.Int64
	loginCheck      histogram
	frontSessions   [numFronts]atomic.Int64 // logged-in sessions by front
	remoteCalls     atomic.Int64            // answered calls with a party on another node
	signals         atomic.Int64            // signals received from other nodes
}

// fronts are the fronts whose sessions are counted apart; a channel that
// names no front (tests) counts as the last.
var fronts = [...]string{transport.FrontTCP, transport.FrontQUIC, "other"}

const numFronts = len(fronts)

// frontOf is the index in fronts of c's front.
func frontOf(c transport.Conn) int {
	if f, ok := c.(transport.Fronted); ok {
		for i, name := range fronts[:numFronts-1] {
			if f.Front() == name {
				return i
			}
		}
	}
	return numFronts - 1
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
	WriteFailures   int64            // reply or media writes that failed or timed out
	SlowConsumers   int64            // clients cut off for a full reply queue
	RateLimited     int64            // commands refused for the rate limit (answered invalid, but the one that closes a flood)
	Flooders        int64            // connections closed for a sustained command flood
	CrowdedBusy     int64            // calls answered busy: the callee's reply queue was over half full
	Unresponsive    int64            // clients closed: silent during a call (transport.Prober)
	DirectWrites    int64            // media writes made by the sender's goroutine
	Drops           map[string]int64 // media chunks dropped, by reason
	MaxQueueDelayNs int64            // longest time a media chunk waited in a queue
	CallResults     map[string]int64 // call attempts by CallResult
	CallsEnded      map[string]int64 // answered calls ended, by EndReason
	Logins          map[string]int64 // login commands by LoginResult
	LoginCheck      Histogram        // time of each password check, seconds
	FrontSessions   map[string]int64 // logged-in sessions now, by front
	RemoteCalls     int64            // answered calls now with a party on another node
	Signals         int64            // signals received from other nodes since start
}

// CallsInProgress returns the number of answered calls now (Stats'
// ActiveCalls). It does not block or take the core's lock, so a password
// check may ask it (accounts.Store.SetPacing).
func (s *Server) CallsInProgress() int64 { return s.metrics.activeCalls.Load() }

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
		WriteFailures:   m.writeFailures.Load(),
		SlowConsumers:   m.slowConsumers.Load(),
		RateLimited:     m.rateLimited.Load(),
		Flooders:        m.flooders.Load(),
		CrowdedBusy:     m.crowded.Load(),
		Unresponsive:    m.unresponsive.Load(),
		DirectWrites:    m.directWrites.Load(),
		Drops:           make(map[string]int64, numDropReasons),
		MaxQueueDelayNs: m.maxQueueDelayNs.Load(),
		RemoteCalls:     m.remoteCalls.Load(),
		Signals:         m.signals.Load(),
	}
	for r := range numDropReasons {
		st.Drops[r.String()] = m.drops[r].Load()
	}
	st.CallResults = make(map[string]int64, numCallResults)
	for r := range numCallResults {
		st.CallResults[r.String()] = m.callResults[r].Load()
	}
	st.CallsEnded = make(map[string]int64, numEndReasons)
	for r := range numEndReasons {
		st.CallsEnded[r.String()] = m.callsEnded[r].Load()
	}
	st.Logins = make(map[string]int64, numLoginResults)
	for r := range numLoginResults {
		st.Logins[r.String()] = m.logins[r].Load()
	}
	st.LoginCheck = m.loginCheck.snapshot()
	st.FrontSessions = make(map[string]int64, numFronts)
	for i, name := range fronts {
		st.FrontSessions[name] = m.frontSessions[i].Load()
	}
	return st
}

func (m *metrics) drop(r DropReason)   { m.drops[r].Add(1) }
func (m *metrics) call(r CallResult)   { m.callResults[r].Add(1) }
func (m *metrics) ended(r EndReason)   { m.callsEnded[r].Add(1) }
func (m *metrics) login(r LoginResult) { m.logins[r].Add(1) }

func (m *metrics) queueDelay(ns int64) {
	for {
		cur := m.maxQueueDelayNs.Load()
		if ns <= cur || m.maxQueueDelayNs.CompareAndSwap(cur, ns) {
			return
		}
	}
}
