package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// mediaEnd is one party's media channel, whatever carries it: a dtcall
// client's Media, or a raw connection to the baseline forwarder.
type mediaEnd interface {
	// write sends one frame: one write on a stream, one datagram.
	write(p []byte) error
	// read blocks for the next chunk (stream) or datagram; it returns when
	// ctx ends or the channel fails.
	read(ctx context.Context) ([]byte, error)
	// datagram reports whether the channel carries one frame per datagram.
	datagram() bool
}

// direction is the media of one call in one direction: the sender's
// count and the receiver's record.
type direction struct {
	sent     atomic.Uint64 // frames with seq >= 1 written, by the sender
	ready    atomic.Bool   // the receiver has heard from the sender (any frame)
	received atomic.Uint64 // data frames accepted, by the receiver

	// Owned by the receiver until media returns.
	lat       []int64 // one-way latency in ns, arrival order
	steadyLat []int64 // the same, of frames sent after the ramp
	jitterSum int64   // sum of |lat[i]-lat[i-1]|
	jitterN   int64
	malformed int64 // frames that failed the sanity check
}

// Timings of the media phase.
const (
	probeEvery   = 20 * time.Millisecond // readiness probe (seq 0) until the peer is heard
	probeTimeout = 5 * time.Second       // no frame from the peer by then: the call fails
	drainTimeout = time.Second           // after sending ends, for frames in flight
)

var errNoMedia = errors.New("no media from the peer within 5 s")

// mediaParams are the traffic settings shared by every call.
type mediaParams struct {
	clock clock
	frame int           // bytes per frame, >= frameHeader
	every time.Duration // between frames of one sender
	until int64         // clock time at which senders stop
	// steady is the clock time the ramp ends: frames sent from then on
	// also count in the latency after the ramp, which leaves out the
	// set-ups' cost (TLS handshakes, logins) to the calls already up.
	steady int64
	live   *liveCounters
}

// runMedia sends frames both ways between a and b until p.until or ctx
// ends, then waits for frames in flight (at most drainTimeout). It returns
// both directions and the first write or read error.
func runMedia(ctx context.Context, p *mediaParams, a, b mediaEnd) (ab, ba *direction, err error) {
	ab, ba = &direction{}, &direction{}
	rctx, stopReaders := context.WithCancel(context.Background())
	defer stopReaders()
	var errOnce sync.Once
	fail := func(e error) { errOnce.Do(func() { err = e }) }
	var readers, senders sync.WaitGroup
	readers.Go(func() { fail(receive(rctx, p, b, a.datagram(), ab)) })
	readers.Go(func() { fail(receive(rctx, p, a, b.datagram(), ba)) })
	sctx, stopSenders := context.WithCancel(ctx)
	senders.Go(func() {
		if e := send(sctx, p, a, ab, ba); e != nil {
			fail(e)
			stopSenders()
		}
	})
	senders.Go(func() {
		if e := send(sctx, p, b, ba, ab); e != nil {
			fail(e)
			stopSenders()
		}
	})
	senders.Wait()
	stopSenders()
	drain(ab, ba)
	stopReaders()
	readers.Wait()
	return ab, ba, err
}

// drain waits until every frame sent has arrived, or drainTimeout.
func drain(ds ...*direction) {
	deadline := time.Now().Add(drainTimeout)
	for time.Now().Before(deadline) {
		done := true
		for _, d := range ds {
			if d.received.Load() < d.sent.Load() {
				done = false
			}
		}
		if done {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// send probes (seq 0) until in.ready, then writes one frame every p.every
// on out until p.until or ctx ends.
func send(ctx context.Context, p *mediaParams, m mediaEnd, out, in *direction) error {
	buf := make([]byte, p.frame)
	probe := time.NewTicker(probeEvery)
	defer probe.Stop()
	giveUp := time.Now().Add(probeTimeout)
	for !in.ready.Load() {
		putFrame(buf, 0, p.clock.now())
		if err := m.write(buf); err != nil {
			return err
		}
		if time.Now().After(giveUp) {
			return errNoMedia
		}
		select {
		case <-ctx.Done():
			return nil
		case <-probe.C:
		}
	}
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	for seq := uint64(1); p.clock.now() < p.until; seq++ {
		putFrame(buf, seq, p.clock.now())
		if err := m.write(buf); err != nil {
			return err
		}
		out.sent.Add(1)
		p.live.framesTx.Add(1)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
	return nil
}

// receive reads m until ctx ends and records what arrives in d. Stream
// media is re-framed by the frame size; datagrams from a datagram sender
// are one frame each. A read error before ctx ends is returned.
func receive(ctx context.Context, p *mediaParams, m mediaEnd, senderDatagram bool, d *direction) error {
	rf := &reframer{size: p.frame}
	whole := m.datagram() && senderDatagram
	var last int64
	record := func(f []byte) {
		seq, sent := parseFrame(f)
		now := p.clock.now()
		if sent < 0 || sent > now || seq > d.sent.Load()+1 {
			d.malformed++
			rf.reset()
			return
		}
		d.ready.Store(true)
		if seq == 0 {
			return
		}
		l := now - sent
		if len(d.lat) > 0 {
			d.jitterSum += abs(l - last)
			d.jitterN++
		}
		last = l
		d.lat = append(d.lat, l)
		if sent >= p.steady {
			d.steadyLat = append(d.steadyLat, l)
		}
		d.received.Add(1)
		p.live.framesRx.Add(1)
	}
	for {
		b, err := m.read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if whole {
			if len(b) != p.frame {
				d.malformed++
				continue
			}
			record(b)
			continue
		}
		rf.feed(b, record)
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
