package core

import (
	"sync"
	"time"
)

// chunk is one piece of media on its way to a receiver.
type chunk struct {
	b      []byte
	queued time.Time
}

// smallChunk is the buffer size kept in the pool: voice frames are tens of
// bytes; bigger reads get a buffer of their own.
const smallChunk = 512

var chunkPool = sync.Pool{New: func() any { return &chunk{b: make([]byte, 0, smallChunk)} }}

// newChunk copies p into a chunk stamped with the time it was queued.
func newChunk(p []byte) *chunk {
	var c *chunk
	if len(p) <= smallChunk {
		c = chunkPool.Get().(*chunk)
	} else {
		c = &chunk{b: make([]byte, 0, len(p))}
	}
	c.b = append(c.b[:0], p...)
	c.queued = time.Now()
	return c
}

// free returns c to the pool. c must not be used afterwards.
func (c *chunk) free() {
	if cap(c.b) == smallChunk {
		chunkPool.Put(c)
	}
}
