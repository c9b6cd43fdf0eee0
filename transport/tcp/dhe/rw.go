//go:build cgo && !nodhe

package dhe

/*
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"net"
	"unsafe"
)

// Read returns the plaintext of at most one TLS record; if p is shorter than
// the record, the rest comes with the next Read. It returns io.EOF after the
// peer's close_notify (or a TCP close between records), and an error wrapping
// net.ErrClosed after Close. It blocks in raw.Read without holding the SSL
// lock, so a concurrent Write proceeds. A timeout can be retried; other
// errors are final.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.rerr != nil {
		return 0, c.rerr
	}
	fed, empty := 0, 0
	for { // ends: every pass decrypts, fails, or reads bytes (capped below)
		n, err := c.open(p)
		if n > 0 || err != nil {
			if err != nil {
				c.rerr = err
			}
			return n, err
		}
		got, err := c.fill()
		if err != nil {
			if !isTimeout(err) {
				c.rerr = err
			}
			return 0, err
		}
		fed += got
		if got == 0 {
			empty++
		} else {
			empty = 0
		}
		switch {
		case fed > maxIdleCiphertext:
			c.rerr = fmt.Errorf("dhe: read: peer sent %d bytes without application data", fed)
			return 0, c.rerr
		case empty > maxEmptyReads:
			c.rerr = fmt.Errorf("dhe: read: %w", io.ErrNoProgress)
			return 0, c.rerr
		}
	}
}

// open decrypts at most one record into p. It returns (0, nil) when OpenSSL
// needs more ciphertext.
func (c *Conn) open(p []byte) (int, error) {
	var st C.dtc_status
	c.sslMu.Lock()
	if c.ssl == nil {
		c.sslMu.Unlock()
		return 0, fmt.Errorf("dhe: read: %w", net.ErrClosed)
	}
	ret := C.dtc_read(c.ssl, unsafe.Pointer(&p[0]), C.int(min(len(p), 1<<30)), &st)
	out := C.dtc_out_pending(c.ssl) > 0
	c.sslMu.Unlock()
	if out {
		c.flushFromReader()
	}
	switch {
	case ret > 0:
		return int(ret), nil
	case st.ssl_error == C.SSL_ERROR_WANT_READ:
		return 0, nil
	case st.ssl_error == C.SSL_ERROR_ZERO_RETURN:
		return 0, io.EOF
	}
	return 0, statusError("dhe: read", &st)
}

// flushFromReader sends an alert that SSL_read queued (e.g. refusing a
// renegotiation). If a Write holds writeMu, the Read does not wait: the
// writer's next drain, or Close, sends the alert in order.
func (c *Conn) flushFromReader() {
	if !c.writeMu.TryLock() {
		return
	}
	defer c.writeMu.Unlock()
	_ = c.flushLocked() // a failure is sticky for writers
}

// fill reads ciphertext from raw, without holding sslMu, into OpenSSL's read
// BIO. It returns the byte count.
func (c *Conn) fill() (int, error) {
	if c.rbuf == nil {
		c.rbuf = make([]byte, readBufSize)
	}
	n, err := c.raw.Read(c.rbuf)
	if n > 0 {
		// Bytes first: the error, if any, comes again on the next read.
		if ferr := c.feed(c.rbuf[:n]); ferr != nil {
			return 0, fmt.Errorf("dhe: read: %w", ferr)
		}
		return n, nil
	}
	switch {
	case err == nil:
		return 0, nil
	case c.closed.Load():
		return 0, fmt.Errorf("dhe: read: %w", net.ErrClosed)
	case errors.Is(err, io.EOF):
		if c.inputPending() {
			return 0, fmt.Errorf("dhe: read: connection closed inside a TLS record: %w", io.ErrUnexpectedEOF)
		}
		return 0, io.EOF
	}
	return 0, fmt.Errorf("dhe: read: %w", err)
}

// inputPending reports whether received bytes await a record's remainder.
func (c *Conn) inputPending() bool {
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	return c.ssl != nil && C.dtc_in_pending(c.ssl) != 0
}

// isTimeout reports whether err is a deadline that a retry may outlast.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Write seals p into TLS records of at most 16384 bytes, so a Write of up to
// 16384 bytes is exactly one record, and sends each record with one
// raw.Write. Writes are serialized; Write blocks in raw.Write (use
// SetWriteDeadline). A failed raw write leaves the TLS stream broken: that
// Write and all later ones return the error.
func (c *Conn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	n := 0
	for len(p) > 0 { // one record per pass
		if c.werr != nil {
			return n, c.werr
		}
		chunk := p[:min(len(p), maxRecordPlaintext)]
		if err := c.sealLocked(chunk); err != nil {
			c.werr = err
			return n, err
		}
		if err := c.flushLocked(); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, c.werr
}

// sealLocked has OpenSSL encrypt chunk into one record in the write BIO.
// c.writeMu must be held.
func (c *Conn) sealLocked(chunk []byte) error {
	var st C.dtc_status
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	if c.ssl == nil {
		return fmt.Errorf("dhe: write: %w", net.ErrClosed)
	}
	if C.dtc_write(c.ssl, unsafe.Pointer(&chunk[0]), C.int(len(chunk)), &st) != C.int(len(chunk)) {
		return statusError("dhe: write", &st)
	}
	return nil
}
