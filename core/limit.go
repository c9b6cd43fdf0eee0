package core

import "time"

// floodWindow is the window of the flood rule: a connection that has
// 3 × CommandBurst commands refused within it is closed.
const floodWindow = 10 * time.Second

// floodFactor times CommandBurst refusals within floodWindow close the
// sender.
const floodFactor = 3

// verdict is what the rate limit says about one command.
type verdict int

const (
	allowed  verdict = iota // run it
	limited                 // refuse it: over the rate
	flooding                // refuse it and close the sender: over the rate for too long
)

// limiter is a connection's command rate limit: a token bucket of burst
// tokens refilled at rate a second (Mumble's messageburst and
// messagelimit), and a count of the refusals in the current flood
// window. It is owned by the connection's read loop.
type limiter struct {
	burst, rate float64
	tokens      float64
	last        time.Time // when tokens was last brought up to date

	refused int       // refusals since since
	since   time.Time // start of the flood window; zero before the first refusal
}

func newLimiter(burst, rate int) limiter {
	return limiter{burst: float64(burst), rate: float64(rate), tokens: float64(burst)}
}

// take spends a token for a command arriving at now.
func (l *limiter) take(now time.Time) verdict {
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return allowed
	}
	if l.since.IsZero() || now.Sub(l.since) > floodWindow {
		l.since, l.refused = now, 0
	}
	l.refused++
	if l.refused >= floodFactor*int(l.burst) {
		return flooding
	}
	return limited
}
