package main

import (
	"encoding/binary"
	"time"
)

// Frame layout, big-endian, in the first 16 bytes of every media frame
// dtload sends; the rest is padding (0x55):
//
//	0..8   sequence number, 1.. per direction (0 is the readiness probe)
//	8..16  send time: nanoseconds since the run's start (monotonic clock)
const (
	frameHeader = 16
	padByte     = 0x55
)

// clock is the run's shared time base: sender and receiver are in one
// process, so one monotonic clock stamps and reads every frame.
type clock struct{ start time.Time }

func newClock() clock { return clock{start: time.Now()} }

// now is nanoseconds since the start.
func (c clock) now() int64 { return int64(time.Since(c.start)) }

// putFrame fills b (len >= frameHeader) with seq and the send time sent.
func putFrame(b []byte, seq uint64, sent int64) {
	binary.BigEndian.PutUint64(b[0:8], seq)
	binary.BigEndian.PutUint64(b[8:16], uint64(sent))
	for i := frameHeader; i < len(b); i++ {
		b[i] = padByte
	}
}

// parseFrame reads the header of one frame.
func parseFrame(b []byte) (seq uint64, sent int64) {
	return binary.BigEndian.Uint64(b[0:8]), int64(binary.BigEndian.Uint64(b[8:16]))
}

// reframer cuts a byte stream back into frames of a fixed size: the server
// keeps the order of stream media but not the boundaries of the writes.
type reframer struct {
	size int
	buf  []byte
}

// feed appends p and calls fn for every complete frame; fn must not keep
// the slice.
func (r *reframer) feed(p []byte, fn func(frame []byte)) {
	if len(r.buf) == 0 {
		for len(p) >= r.size { // fast path: whole frames, nothing pending
			fn(p[:r.size])
			p = p[r.size:]
		}
		r.buf = append(r.buf, p...)
		return
	}
	r.buf = append(r.buf, p...)
	n := 0
	for len(r.buf)-n >= r.size {
		fn(r.buf[n : n+r.size])
		n += r.size
	}
	r.buf = append(r.buf[:0], r.buf[n:]...)
}

// reset drops a partial frame (after a frame failed its sanity check).
func (r *reframer) reset() { r.buf = r.buf[:0] }
