package main

import (
	"context"
	"fmt"
	"time"
)

// criterion is what a step must meet to count as good.
type criterion struct {
	maxP99    time.Duration // one-way latency p99 below this
	maxLoss   float64       // loss in % below this
	maxFailed int           // at most this many failed calls
}

// judge says whether r meets c, and if not why.
func (c criterion) judge(r *Report) (bool, string) {
	switch {
	case r.CallsFailed > c.maxFailed:
		return false, fmt.Sprintf("%d calls failed%s", r.CallsFailed, reasons(r.FailReasons))
	case r.Latency.N == 0:
		return false, "no media arrived"
	case r.Latency.P99 >= ms(int64(c.maxP99)):
		return false, fmt.Sprintf("p99 %.3f ms >= %v", r.Latency.P99, c.maxP99)
	case r.LossPct >= c.maxLoss:
		return false, fmt.Sprintf("loss %.4f %% >= %g %%", r.LossPct, c.maxLoss)
	}
	return true, ""
}

// step is one measured call count of a search.
type step struct {
	Calls  int       `json:"calls"`
	Good   bool      `json:"good"`          // a majority of its runs were good
	Why    string    `json:"why,omitempty"` // a bad step's last bad run's reason
	Runs   []stepRun `json:"runs"`
	Report *Report   `json:"report,omitempty"` // the last run's
}

// stepRun is one run of a step.
type stepRun struct {
	Good bool   `json:"good"`
	Why  string `json:"why,omitempty"`
}

// search finds the largest call count meeting a criterion.
type search struct {
	start, limit int // first count; largest count to try
	// precision: stop bisecting when first bad - last good <= precision;
	// 0 means 5 % of the last good count, at least 1.
	precision int
	crit      criterion
	// measure runs one bounded step.
	measure func(ctx context.Context, calls int) (*Report, error)
	// logf reports each step as it ends; may be nil.
	logf func(format string, a ...any)
	// runs is how many times a step runs (--runs); it passes when a
	// majority of them are good. 0 means 1.
	runs int
}

func (s *search) runsPerStep() int { return max(1, s.runs) }

// majority decides a step of runs runs from the votes so far (good or
// not, in order): decided once more than half of runs are good (pass) or
// bad, so that 2 of 3 alike end the step; runs 1 is the single-run search.
// With an even count a tie fails: runs/2+1 good runs are needed.
func majority(votes []bool, runs int) (decided, pass bool) {
	need := runs/2 + 1
	good := count(votes, true)
	bad := len(votes) - good
	switch {
	case good >= need:
		return true, true
	case bad > runs-need:
		return true, false
	}
	return len(votes) >= runs, false
}

func count(votes []bool, v bool) int {
	n := 0
	for _, x := range votes {
		if x == v {
			n++
		}
	}
	return n
}

func verdict(good bool) string {
	if good {
		return "good"
	}
	return "bad"
}

// logRun reports run i (1-based) of a step of n calls.
func (s *search) logRun(n, i int, r *Report, good bool, why string) {
	if s.logf == nil {
		return
	}
	v := "good"
	if !good {
		v = "bad: " + why
		if r.CallsFailed > 0 && r.FirstError != nil {
			v += "; first error: " + r.FirstError.String()
		}
	}
	run := ""
	if s.runsPerStep() > 1 {
		run = fmt.Sprintf(" (run %d)", i)
	}
	s.logf("find-max: %d calls%s: p99 %.3f ms, loss %.4f %%, failed %d: %s",
		n, run, r.Latency.P99, r.LossPct, r.CallsFailed, v)
}

// SearchResult is the outcome of --find-max.
type SearchResult struct {
	Max         int    `json:"max_calls"` // largest good count, 0 if none
	FirstBad    int    `json:"first_bad"` // smallest bad count, 0 if none failed
	Limited     bool   `json:"limited"`   // the limit was good: the true max may be higher
	Steps       []step `json:"steps"`
	Interrupted bool   `json:"interrupted,omitempty"`
}

// run doubles the count from start until a step fails (or the limit is
// good), then bisects between the last good and the first bad count.
func (s *search) run(ctx context.Context) (*SearchResult, error) {
	res := &SearchResult{}
	try := func(n int) (bool, bool, error) { // good, stop
		st := step{Calls: n}
		var votes []bool
		for {
			r, err := s.measure(ctx, n)
			if err != nil {
				return false, true, err
			}
			good, why := s.crit.judge(r)
			if r.Interrupted || ctx.Err() != nil {
				res.Interrupted = true
				return false, true, nil
			}
			votes = append(votes, good)
			st.Runs = append(st.Runs, stepRun{Good: good, Why: why})
			st.Report = r
			if !good {
				st.Why = why
			}
			s.logRun(n, len(votes), r, good, why)
			if decided, pass := majority(votes, s.runsPerStep()); decided {
				st.Good = pass
				if pass {
					st.Why = ""
				}
				break
			}
		}
		res.Steps = append(res.Steps, st)
		if s.logf != nil && s.runsPerStep() > 1 {
			s.logf("find-max: %d calls: %s, %d of %d runs good", n, verdict(st.Good), count(votes, true), len(votes))
		}
		return st.Good, false, nil
	}
	lo, hi := 0, 0
	for n := min(max(1, s.start), s.limit); ; n = min(2*n, s.limit) {
		good, stop, err := try(n)
		if stop {
			res.Max = lo
			return res, err
		}
		if !good {
			hi = n
			break
		}
		lo = n
		if n >= s.limit {
			res.Max, res.Limited = lo, true
			return res, nil
		}
	}
	for hi-lo > s.prec(lo) {
		mid := lo + (hi-lo)/2
		good, stop, err := try(mid)
		if stop {
			res.Max, res.FirstBad = lo, hi
			return res, err
		}
		if good {
			lo = mid
		} else {
			hi = mid
		}
	}
	res.Max, res.FirstBad = lo, hi
	return res, nil
}

// smallestBad is the bad step of the fewest calls, nil if none.
func (r *SearchResult) smallestBad() *step {
	var b *step
	for i, st := range r.Steps {
		if !st.Good && (b == nil || st.Calls < b.Calls) {
			b = &r.Steps[i]
		}
	}
	return b
}

func (s *search) prec(lo int) int {
	if s.precision > 0 {
		return s.precision
	}
	return max(1, lo/20)
}
