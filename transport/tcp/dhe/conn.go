//go:build cgo && !nodhe

package dhe

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

const (
	// maxRecordPlaintext is the most plaintext one TLS record carries.
	maxRecordPlaintext = 16384
	// readBufSize is how much ciphertext one raw.Read asks for.
	readBufSize = 16 << 10
	// maxHandshakeBytes caps what a client may send during the handshake
	// (its flight is well under 2 KiB without client certificates).
	maxHandshakeBytes = 64 << 10
	// maxIdleCiphertext caps the ciphertext one Read accepts without
	// yielding application data (alerts, empty records).
	maxIdleCiphertext = 1 << 20
	// maxEmptyReads caps consecutive raw reads that return nothing.
	maxEmptyReads = 100
	// closeNotifyTimeout bounds Close's attempt to send close_notify.
	closeNotifyTimeout = 250 * time.Millisecond
)

// Conn is an established DHE TLS 1.2 connection over a raw net.Conn.
//
// Read and Write may run concurrently in two goroutines (a reader loop and a
// writer loop); concurrent Reads are serialized, and so are Writes. Each
// Read returns the plaintext of at most one TLS record, and each Write of up
// to 16384 bytes sends exactly one record in one raw.Write, so message
// boundaries survive both ways. Close closes raw.
type Conn struct {
	raw net.Conn

	version, cipher string // set by handshake, then read-only

	closed atomic.Bool // set once by Close

	// readMu serializes Reads and is held across raw.Read; Write never
	// takes it, so a Read waiting for the peer never delays a Write.
	readMu sync.Mutex
	rbuf   []byte // ciphertext read buffer
	rerr   error  // sticky read error (io.EOF, TLS failure, closed)

	// writeMu serializes what goes to raw: it is held from sealing a record
	// until its bytes are written, so records hit the wire in the order
	// OpenSSL produced them. Lock order: writeMu, then sslMu.
	writeMu sync.Mutex
	wbuf    []byte // ciphertext to send
	werr    error  // sticky: after a failed raw write the TLS stream is broken

	// sslMu guards ssl and every SSL_* and BIO_* call: the SSL object is not
	// thread-safe. It is never held across raw I/O.
	sslMu sync.Mutex
	ssl   *C.SSL // nil once freed
}

// handshake drives SSL_do_handshake, feeding prefix first, until the
// handshake completes. Each SSL_do_handshake call holds one of sl's slots;
// writing the server's flight and reading the client's do not. Only
// Server.Handshake calls it, before c is shared.
func (c *Conn) handshake(ctx context.Context, sl slots, prefix []byte) error {
	if err := c.feed(prefix); err != nil {
		return fmt.Errorf("dhe: handshake: %w", err)
	}
	buf := make([]byte, 4<<10)
	received := len(prefix)
	for range maxHandshakeBytes { // each pass but the last reads bytes
		ret, st, err := c.step(ctx, sl)
		if err != nil {
			return err
		}
		// Send what OpenSSL produced: the server's flight, or an alert.
		if err := c.flush(); err != nil {
			return fmt.Errorf("dhe: handshake: send: %w", err)
		}
		if ret == 1 {
			c.version, c.cipher = c.describe()
			return nil
		}
		if st.ssl_error != C.SSL_ERROR_WANT_READ {
			return statusError("dhe: handshake", &st)
		}
		if received > maxHandshakeBytes {
			return fmt.Errorf("dhe: handshake: client sent over %d bytes", maxHandshakeBytes)
		}
		n, err := c.raw.Read(buf)
		received += n
		if ferr := c.feed(buf[:n]); ferr != nil {
			return fmt.Errorf("dhe: handshake: %w", ferr)
		}
		if err != nil && n == 0 {
			return fmt.Errorf("dhe: handshake: receive: %w", err)
		}
	}
	return fmt.Errorf("dhe: handshake: no progress after %d reads", maxHandshakeBytes)
}

// step runs SSL_do_handshake once on the bytes fed so far, holding one of
// sl's slots for the call only.
func (c *Conn) step(ctx context.Context, sl slots) (C.int, C.dtc_status, error) {
	var st C.dtc_status
	if err := sl.acquire(ctx); err != nil {
		return 0, st, err
	}
	defer sl.release()
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	if c.ssl == nil {
		return 0, st, fmt.Errorf("dhe: handshake: %w", net.ErrClosed)
	}
	return C.dtc_handshake(c.ssl, &st), st, nil
}

// describe returns the negotiated protocol version and cipher names.
func (c *Conn) describe() (version, cipher string) {
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	return C.GoString(C.dtc_version(c.ssl)), C.GoString(C.dtc_cipher(c.ssl))
}

// ConnectionState returns the protocol version and OpenSSL cipher name, e.g.
// "TLSv1.2" and "DHE-RSA-AES256-GCM-SHA384".
func (c *Conn) ConnectionState() (version, cipher string) {
	return c.version, c.cipher
}

// feed appends bytes received from the peer to OpenSSL's read BIO.
func (c *Conn) feed(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	var st C.dtc_status
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	if c.ssl == nil {
		return net.ErrClosed
	}
	if C.dtc_feed(c.ssl, unsafe.Pointer(&p[0]), C.int(len(p)), &st) != C.int(len(p)) {
		return statusError("buffer received bytes", &st)
	}
	return nil
}

// drainLocked appends the ciphertext waiting in OpenSSL's write BIO to dst.
// c.sslMu must be held.
func (c *Conn) drainLocked(dst []byte) []byte {
	if c.ssl == nil {
		return dst
	}
	n := int(C.dtc_out_pending(c.ssl))
	if n <= 0 {
		return dst
	}
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	got := int(C.dtc_drain(c.ssl, unsafe.Pointer(&dst[start]), C.int(n)))
	return dst[:start+got]
}

// flush sends whatever ciphertext OpenSSL has queued (handshake messages,
// alerts). It blocks in raw.Write.
func (c *Conn) flush() error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.flushLocked()
}

// flushLocked is flush with c.writeMu held. A failed write is sticky.
func (c *Conn) flushLocked() error {
	if c.werr != nil {
		return c.werr
	}
	c.sslMu.Lock()
	c.wbuf = c.drainLocked(c.wbuf[:0])
	c.sslMu.Unlock()
	if len(c.wbuf) == 0 {
		return nil
	}
	if _, err := c.raw.Write(c.wbuf); err != nil {
		c.werr = fmt.Errorf("dhe: write: %w", err)
		return c.werr
	}
	return nil
}

// free releases the SSL object. Callers inside an SSL call hold sslMu, so
// free waits for them; later calls see c.ssl == nil.
func (c *Conn) free() {
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	if c.ssl != nil {
		C.dtc_ssl_free(c.ssl)
		c.ssl = nil
	}
}

// Close sends close_notify (best effort, bounded by a short write deadline
// that also unblocks a Write stuck on a peer that does not read), closes raw
// (which unblocks a Read waiting in raw.Read) and frees the SSL object once
// no call is inside OpenSSL. Close is idempotent; later calls return nil.
// Read and Write after Close return errors wrapping net.ErrClosed.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	_ = c.raw.SetWriteDeadline(time.Now().Add(closeNotifyTimeout))
	c.writeMu.Lock()
	if c.werr == nil {
		var st C.dtc_status
		c.sslMu.Lock()
		C.dtc_shutdown(c.ssl, &st)
		c.sslMu.Unlock()
		_ = c.flushLocked()
	}
	c.werr = fmt.Errorf("dhe: write: %w", net.ErrClosed)
	c.writeMu.Unlock()
	err := c.raw.Close()
	c.free()
	if err != nil {
		return fmt.Errorf("dhe: close: %w", err)
	}
	return nil
}

// LocalAddr returns raw's local address.
func (c *Conn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr returns raw's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline sets raw's deadlines. After a Write times out the connection
// is broken (the record may be half sent): later Writes fail.
func (c *Conn) SetDeadline(t time.Time) error { return c.raw.SetDeadline(t) }

// SetReadDeadline sets raw's read deadline; a Read that times out can be
// retried.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.raw.SetReadDeadline(t) }

// SetWriteDeadline sets raw's write deadline; see SetDeadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }
