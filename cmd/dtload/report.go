package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// liveCounters are read by the progress display while a run goes on.
type liveCounters struct {
	logins, callsUp, callsDone, callsFailed atomic.Int64
	framesTx, framesRx                      atomic.Uint64
}

// Report is the outcome of one run; it is also the JSON report.
type Report struct {
	Mode   string `json:"mode"` // "dtcall" or "baseline"
	Server string `json:"server"`
	// Nodes are the servers' nodes, HOST:COMMAND:MEDIA:QUIC; with more
	// than one, CrossNode: each call's parties were on different nodes.
	Nodes           []string `json:"nodes,omitempty"`
	CrossNode       bool     `json:"cross_node,omitempty"`
	CallerTransport string   `json:"caller_transport"`
	CalleeTransport string   `json:"callee_transport"`
	Calls           int      `json:"calls"`
	RampS           float64  `json:"ramp_s"`
	DurationS       float64  `json:"duration_s"`
	FrameBytes      int      `json:"frame_bytes"`
	Rate            int      `json:"rate"`
	Interrupted     bool     `json:"interrupted,omitempty"`
	ElapsedS        float64  `json:"elapsed_s"`

	CallsOK     int            `json:"calls_ok"`
	CallsFailed int            `json:"calls_failed"`
	FailReasons map[string]int `json:"fail_reasons,omitempty"`
	FirstError  *Failure       `json:"first_error,omitempty"` // the earliest failure, when calls_failed > 0
	Notes       map[string]int `json:"notes,omitempty"`       // not failures, e.g. end_not_seen

	Latency Percentiles `json:"latency_ms"`
	// LatencySteady is Latency of the frames sent after the ramp: what
	// the calls get once no more are being set up. find-max judges Latency.
	LatencySteady Percentiles `json:"latency_after_ramp_ms"`
	JitterMS      float64     `json:"jitter_ms"`
	FramesSent    uint64      `json:"frames_sent"`
	FramesRecv    uint64      `json:"frames_received"`
	LossPct       float64     `json:"loss_pct"`
	Malformed     int64       `json:"frames_malformed,omitempty"`
	FramesPerSec  float64     `json:"frames_per_s"`
	MediaS        float64     `json:"media_window_s"`

	Logins       int         `json:"logins"`
	LoginsPerSec float64     `json:"logins_per_s"`
	LoginMS      Percentiles `json:"login_ms"`
	Setups       int         `json:"call_setups"`
	SetupsPerSec float64     `json:"call_setups_per_s"`
	SetupMS      Percentiles `json:"call_setup_ms"`
	// LastCallUpS is when the last call was up (both parties' call|start),
	// in seconds from the run's start: with a ramp, how long the storm took
	// to be served.
	LastCallUpS float64 `json:"last_call_up_s"`

	ServerProc *ProcStats `json:"server_process,omitempty"`
	Load       ProcStats  `json:"dtload_process"`
}

// Failure is why a call failed (for dtload idle, a user's login).
type Failure struct {
	Call   int     `json:"call"`   // 1-based: call N uses accounts 2N-1 and 2N (idle: user N)
	Reason string  `json:"reason"` // its key in fail_reasons: dial, login, register_media, call_*, ...
	Error  string  `json:"error"`  // the error, naming the user and transport
	AtS    float64 `json:"at_s"`   // when, in seconds from the run's start
}

func newFailure(i int, reason string, err error, at time.Duration) *Failure {
	f := &Failure{Call: i + 1, Reason: reason, Error: reason, AtS: at.Seconds()}
	if err != nil {
		f.Error = err.Error()
	}
	return f
}

func (f *Failure) String() string {
	return fmt.Sprintf("call %d, %s, at %.1fs: %s", f.Call, f.Reason, f.AtS, f.Error)
}

// writeFailures tells, on stderr, how many calls failed, by reason, and
// the first failure's error. It writes nothing when every call succeeded.
func (r *Report) writeFailures(w io.Writer) {
	if r.CallsFailed == 0 {
		return
	}
	fmt.Fprintf(w, "dtload: %d of %d calls failed%s\n", r.CallsFailed, r.Calls, reasons(r.FailReasons))
	if r.FirstError != nil {
		fmt.Fprintf(w, "dtload: first error: %v\n", r.FirstError)
	}
}

// Percentiles of a sample, in milliseconds.
type Percentiles struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// ProcStats is a process's CPU and memory over the run.
type ProcStats struct {
	PID int `json:"pid,omitempty"`
	// PIDs are all the processes summed (--server-pid PID,PID2), PID the first.
	PIDs []int `json:"pids,omitempty"`
	// CPUPct is CPU time from the end of the ramp (all calls started) to
	// the end of the duration, as % of one core; CPUPctRun over the whole
	// run.
	CPUPct    float64 `json:"cpu_pct"`
	CPUPctRun float64 `json:"cpu_pct_run"`
	RSSKB     int64   `json:"rss_kb,omitempty"`     // at the end of the duration
	RSSMaxKB  int64   `json:"rss_max_kb,omitempty"` // largest sample
}

// percentiles sorts ns (in place) and summarizes it in ms.
func percentiles(ns []int64) Percentiles {
	if len(ns) == 0 {
		return Percentiles{}
	}
	slices.Sort(ns)
	at := func(q float64) float64 {
		i := int(q*float64(len(ns))+0.5) - 1
		i = max(0, min(i, len(ns)-1))
		return ms(ns[i])
	}
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	return Percentiles{
		N: len(ns), P50: at(0.50), P90: at(0.90), P99: at(0.99),
		Max: ms(ns[len(ns)-1]), Mean: sum / float64(len(ns)) / 1e6,
	}
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// addMedia folds the directions of every call into r.
func (r *Report) addMedia(dirs []*direction, window time.Duration) {
	var all, steady []int64
	var jSum, jN int64
	for _, d := range dirs {
		all = append(all, d.lat...)
		steady = append(steady, d.steadyLat...)
		jSum += d.jitterSum
		jN += d.jitterN
		r.FramesSent += d.sent.Load()
		r.FramesRecv += d.received.Load()
		r.Malformed += d.malformed
	}
	r.Latency = percentiles(all)
	r.LatencySteady = percentiles(steady)
	if jN > 0 {
		r.JitterMS = float64(jSum) / float64(jN) / 1e6
	}
	if r.FramesSent > 0 && r.FramesRecv < r.FramesSent {
		r.LossPct = 100 * float64(r.FramesSent-r.FramesRecv) / float64(r.FramesSent)
	}
	r.MediaS = window.Seconds()
	if window > 0 {
		r.FramesPerSec = float64(r.FramesRecv) / window.Seconds()
	}
}

// rate is n events over the span between the first start and last end.
func rate(n int, first, last time.Time) float64 {
	if n == 0 || !last.After(first) {
		return 0
	}
	return float64(n) / last.Sub(first).Seconds()
}

// writeSummary prints r for people.
func (r *Report) writeSummary(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	title := "dtload " + r.Mode
	if r.Interrupted {
		title += " (interrupted)"
	}
	p("%s: %s, %d calls, caller %s, callee %s, %d B x %d/s each way, ramp %gs, duration %gs, elapsed %.1fs",
		title, r.Server, r.Calls, r.CallerTransport, r.CalleeTransport, r.FrameBytes, r.Rate, r.RampS, r.DurationS, r.ElapsedS)
	if len(r.Nodes) > 1 {
		p("  nodes      %s: clients spread round-robin, every call cross-node (caller and callee on different nodes)",
			strings.Join(r.Nodes, ", "))
	} else if len(r.Nodes) == 1 {
		p("  node       %s", r.Nodes[0])
	}
	p("  calls      ok %d, failed %d%s", r.CallsOK, r.CallsFailed, reasons(r.FailReasons))
	if len(r.Notes) > 0 {
		p("  notes     %s", reasons(r.Notes))
	}
	l := r.Latency
	p("  latency    p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms (mean %.3f ms, %d frames)", l.P50, l.P90, l.P99, l.Max, l.Mean, l.N)
	if s := r.LatencySteady; s.N > 0 && s.N < l.N {
		p("  after ramp p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms (%d frames sent after the ramp)", s.P50, s.P90, s.P99, s.Max, s.N)
	}
	p("  jitter     %.3f ms", r.JitterMS)
	p("  loss       %.4f %% (%d sent, %d received%s)", r.LossPct, r.FramesSent, r.FramesRecv, malformed(r.Malformed))
	p("  delivered  %.0f frames/s over %.1f s (first call up to the end; %d/s offered with all calls up)",
		r.FramesPerSec, r.MediaS, 2*r.Calls*r.Rate)
	if r.Mode == "dtcall" {
		p("  logins     %d, %.1f/s (p50 %.1f ms, p99 %.1f ms)", r.Logins, r.LoginsPerSec, r.LoginMS.P50, r.LoginMS.P99)
	}
	p("  set-ups    %d, %.1f/s (p50 %.1f ms, p99 %.1f ms); last call up at %.2f s", r.Setups, r.SetupsPerSec, r.SetupMS.P50, r.SetupMS.P99, r.LastCallUpS)
	if s := r.ServerProc; s != nil {
		p("  server     pid %s: CPU %.1f %% of one core (after the ramp), %.1f %% (whole run); RSS %d KiB (max %d KiB)",
			pidList(s.PIDs), s.CPUPct, s.CPUPctRun, s.RSSKB, s.RSSMaxKB)
	}
	p("  dtload     CPU %.1f %% of one core (after the ramp), %.1f %% (whole run)", r.Load.CPUPct, r.Load.CPUPctRun)
}

func reasons(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func malformed(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d malformed", n)
}

// writeJSON writes v as indented JSON to path.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
