package clienthello

import (
	"net"
	"sync"
)

// ReplayConn is a net.Conn whose Read returns a prefix (the bytes Read
// consumed) before reading from the wrapped connection. All other methods,
// Close and the deadlines included, go to the wrapped connection; deadlines
// do not apply to the prefix. It is safe for concurrent use.
type ReplayConn struct {
	net.Conn

	mu     sync.Mutex
	prefix []byte // unread replay bytes; nil once drained
}

// NewReplayConn returns a ReplayConn that reads prefix, then conn. It keeps
// prefix: the caller must not modify it afterwards. Closing the ReplayConn
// closes conn.
func NewReplayConn(conn net.Conn, prefix []byte) *ReplayConn {
	if len(prefix) == 0 {
		prefix = nil
	}
	return &ReplayConn{Conn: conn, prefix: prefix}
}

// Read returns replay bytes while any are left, without blocking; then it
// reads from the wrapped connection.
func (c *ReplayConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.prefix != nil {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		if len(c.prefix) == 0 {
			c.prefix = nil
		}
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// Drained reports whether the prefix has all been read: Read now reads
// the wrapped connection, which a caller may as well read directly.
func (c *ReplayConn) Drained() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prefix == nil
}

// NetConn returns the wrapped connection.
func (c *ReplayConn) NetConn() net.Conn {
	return c.Conn
}
