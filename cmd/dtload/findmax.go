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
	Calls  int     `json:"calls"`
	Good   bool    `json:"good"`
	Why    string  `json:"why,omitempty"`
	Report *Report `json:"report,omitempty"`
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
		r, err := s.measure(ctx, n)
		if err != nil {
			return false, true, err
		}
		good, why := s.crit.judge(r)
		if r.Interrupted || ctx.Err() != nil {
			res.Interrupted = true
			return false, true, nil
		}
		res.Steps = append(res.Steps, step{Calls: n, Good: good, Why: why, Report: r})
		if s.logf != nil {
			verdict := "good"
			if !good {
				verdict = "bad: " + why
				if r.CallsFailed > 0 && r.FirstError != nil {
					verdict += "; first error: " + r.FirstError.String()
				}
			}
			s.logf("find-max: %d calls: p99 %.3f ms, loss %.4f %%, failed %d: %s",
				n, r.Latency.P99, r.LossPct, r.CallsFailed, verdict)
		}
		return good, false, nil
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
