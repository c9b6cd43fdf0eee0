package tcp

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/wire"
)

// secureConn is what both TLS engines give us: crypto/tls's *tls.Conn and
// the OpenSSL engine's *dhe.Conn. Each Read returns the plaintext of at most
// one TLS record and each Write of up to 16 KiB is one record.
type secureConn interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// recordConn adapts a TLS connection to transport.MediaConn: a message is
// one TLS record.
type recordConn struct {
	// Every record touches these: first.
	sc      secureConn
	try     *trySocket // under a crypto/tls connection: writes that never wait
	lazy    *lazyRead  // &ownLazy when the record buffer is borrowed while data comes (crypto/tls); nil: buf
	ownLazy lazyRead

	raw    net.Conn // the TCP connection under sc
	remote netip.AddrPort
	buf    []byte    // owned by the reader; holds one record; nil with lazy
	room   *sendRoom // otherwise (OpenSSL), owned by the writer; nil when raw cannot be polled

	push pushState // its media loop, when one reads it (PushMedia)
}

var (
	_ transport.MediaConn = (*recordConn)(nil)
	_ transport.TryWriter = (*recordConn)(nil)
)

func newRecordConn(sc secureConn, raw net.Conn) *recordConn {
	c := &recordConn{
		sc:     sc,
		raw:    raw,
		remote: addrPort(raw.RemoteAddr()),
	}
	if c.ownLazy.init(sc, raw) {
		c.lazy = &c.ownLazy
	}
	if tc, ok := sc.(*tls.Conn); ok {
		c.try, _ = tc.NetConn().(*trySocket)
	}
	if c.try == nil {
		c.room = newSendRoom(raw)
	}
	if c.lazy == nil {
		c.buf = make([]byte, transport.MaxMessage)
	}
	return c
}

// readRecord reads the next record's plaintext (at most one record; a
// zero-length one gives nothing), valid until the next read.
func (c *recordConn) readRecord() ([]byte, error) {
	if c.lazy != nil {
		return c.lazy.read(c.sc)
	}
	n, err := c.sc.Read(c.buf)
	return c.buf[:n], err
}

// addrPort converts a TCP address, IPv4-mapped IPv6 unmapped so that the
// same client compares equal on both listeners.
func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// ReadMessage returns the next record. A client that sends a zero-length
// record gets it skipped, not returned as a message.
func (c *recordConn) ReadMessage() ([]byte, error) {
	for range maxEmptyReads {
		rec, err := c.readRecord()
		if len(rec) > 0 {
			return rec, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, io.ErrNoProgress
}

// maxEmptyReads bounds the zero-length records skipped in a row.
const maxEmptyReads = 100

// WriteMessage writes msg as one record.
func (c *recordConn) WriteMessage(msg []byte) error {
	return c.write(msg)
}

// write writes p as one record, waiting for room within the write
// deadline. A socket in a media loop never waits in the write itself: the
// record is sealed and what did not fit held, and write waits for the
// loop to send it.
func (c *recordConn) write(p []byte) error {
	d := c.detached()
	if d == nil {
		_, err := c.sc.Write(p)
		return err
	}
	if err := c.try.waitSent(d); err != nil { // what an earlier write left
		return err
	}
	if len(p) > 0 {
		if _, err := c.sc.Write(p); err != nil {
			return err
		}
	}
	return c.try.waitSent(d)
}

// detached is the socket's state in a media loop, or nil.
func (c *recordConn) detached() *detached {
	if c.try == nil {
		return nil
	}
	return c.try.det.Load()
}

// ReadMedia returns the next record that is not a lone "D" keepalive. The
// old server relayed keepalives to the peer, whose decoder reads fixed
// 32-byte frames and lost alignment for the rest of the call.
func (c *recordConn) ReadMedia() ([]byte, error) {
	empty := 0
	for {
		rec, err := c.readRecord()
		switch {
		case len(rec) == 1 && rec[0] == wire.Keepalive && err == nil:
			continue // blocks in Read again: a keepalive is a real record
		case len(rec) > 0 || err != nil:
			return rec, err
		}
		if empty++; empty == maxEmptyReads {
			return nil, io.ErrNoProgress
		}
	}
}

// WriteMedia writes p; up to 16 KiB it is one record. What a tried write
// held back goes first; with p empty, only that.
func (c *recordConn) WriteMedia(p []byte) error {
	if len(p) == 0 && c.detached() == nil {
		if c.try != nil {
			return c.try.flush()
		}
		return nil
	}
	return c.write(p)
}

// TryWriteMedia writes p as one record without waiting. Under crypto/tls
// the record is written without waiting and what the socket has no room
// for is held (Held). Under OpenSSL it is written only if the TCP send
// buffer has room for it now: the engine writes a record straight to the
// socket, so a record that fits goes out without waiting.
func (c *recordConn) TryWriteMedia(p []byte) (transport.TryResult, error) {
	if len(p) > transport.MaxTryWrite {
		return transport.NotTaken, nil
	}
	if c.try != nil {
		c.try.trying.Store(true)
		_, err := c.sc.Write(p)
		c.try.trying.Store(false)
		if err == nil && c.try.holding.Load() {
			return transport.Held, nil
		}
		return transport.Written, err
	}
	if !c.room.now() {
		return transport.NotTaken, nil
	}
	_, err := c.sc.Write(p)
	return transport.Written, err
}

func (c *recordConn) SetReadDeadline(t time.Time) error {
	if c.lazy != nil {
		return c.setLazyDeadline(t)
	}
	return c.sc.SetReadDeadline(t)
}
func (c *recordConn) SetWriteDeadline(t time.Time) error { return c.sc.SetWriteDeadline(t) }
func (c *recordConn) RemoteAddr() netip.AddrPort         { return c.remote }

// Origin is the client's IP address: a legacy media connection must come
// from the same address as its command connection.
func (c *recordConn) Origin() any { return c.remote.Addr() }

// EnableDatagrams fails: TLS over TCP has no datagram mode.
func (c *recordConn) EnableDatagrams() error { return errNoDatagrams }

var errNoDatagrams = errors.New("no datagram mode on the legacy front")

// Refuse closes the connection: legacy clients expect no reply to a
// registration, refused or not.
func (c *recordConn) Refuse(transport.Refusal) { c.Close() }

// Close closes the TCP connection first, then the TLS layer. The core may
// close a connection while holding its lock and while a write to a stalled
// client is blocked: closing the socket fails that write at once, so the
// TLS layer's close_notify (which waits for the writer) cannot stall the
// core. Legacy clients do not wait for close_notify.
func (c *recordConn) Close() error {
	c.raw.Close()
	return c.sc.Close()
}

// Front names the legacy front, for the core's per-front counts.
func (c *recordConn) Front() string { return transport.FrontTCP }
