package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// plainEvery is how often a run prints a progress line when its output is
// not a terminal.
const plainEvery = 5 * time.Second

// showProgress shows the run until the returned function is called: a
// live bar over ramp + duration on a terminal, a line every plainEvery
// otherwise. It also samples the server's RSS every half second.
func (r *runner) showProgress(watch *procWatch, clk clock) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	total := r.cfg.ramp + r.cfg.duration
	var bar *progressbar.ProgressBar
	if r.cfg.progress != nil && r.cfg.tty {
		bar = progressbar.NewOptions64(int64(total/time.Millisecond),
			progressbar.OptionSetWriter(r.cfg.progress),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetDescription(r.status(watch, clk)),
		)
	}
	wg.Go(func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		lastLine := time.Now()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			watch.sampleRSS()
			switch {
			case bar != nil:
				bar.Describe(r.status(watch, clk))
				bar.Set64(min(int64(time.Since(clk.start)/time.Millisecond), int64(total/time.Millisecond)))
			case r.cfg.progress != nil && time.Since(lastLine) >= plainEvery:
				lastLine = time.Now()
				fmt.Fprintf(r.cfg.progress, "dtload: %5.1fs %s\n", time.Since(clk.start).Seconds(), r.status(watch, clk))
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		if bar != nil {
			bar.Finish()
			bar.Exit()
		}
	}
}

// status is one line about the run so far.
func (r *runner) status(watch *procWatch, clk clock) string {
	l := r.live
	tx, rx := l.framesTx.Load(), l.framesRx.Load()
	s := fmt.Sprintf("calls up %d/%d, done %d, failed %d, logins %d, frames %d sent %d received",
		l.callsUp.Load(), r.cfg.calls, l.callsDone.Load(), l.callsFailed.Load(), l.logins.Load(), tx, rx)
	if len(watch.pids) > 0 {
		s += fmt.Sprintf(", server RSS %d KiB", watch.rssMax.Load())
	}
	return s
}
