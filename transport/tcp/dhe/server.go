//go:build cgo && !nodhe

package dhe

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// errServerClosed is returned by Handshake after Server.Close.
var errServerClosed = errors.New("dhe: server closed")

// Server holds one OpenSSL context (certificate, DH parameters, ciphers) and
// runs DHE handshakes on connections it is handed. It never listens. Its
// methods are safe for concurrent use.
type Server struct {
	slots slots // one token per handshake step inside OpenSSL: the cap

	mu  sync.RWMutex
	ctx *C.SSL_CTX // nil after Close; read-locked around SSL_new
}

// NewServer loads the certificate, key, DH parameters and cipher string.
// Errors name the file and OpenSSL's reason.
func NewServer(cfg Config) (*Server, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("dhe: a certificate file and a key file are required")
	}
	var st C.dtc_status
	ctx := C.dtc_ctx_new(&st)
	if ctx == nil {
		return nil, statusError("dhe: create SSL_CTX", &st)
	}
	if err := configure(ctx, cfg); err != nil {
		C.dtc_ctx_free(ctx)
		return nil, err
	}
	return &Server{ctx: ctx, slots: make(slots, cfg.maxHandshakes())}, nil
}

// Reload loads cfg's certificate, key, DH parameters and cipher string into
// a new OpenSSL context and makes it the one later handshakes use; on error
// nothing changes. Handshakes in progress and established Conns keep the old
// context (OpenSSL counts their references). The handshake cap stays.
func (s *Server) Reload(cfg Config) error {
	var st C.dtc_status
	ctx := C.dtc_ctx_new(&st)
	if ctx == nil {
		return statusError("dhe: create SSL_CTX", &st)
	}
	if err := configure(ctx, cfg); err != nil {
		C.dtc_ctx_free(ctx)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		C.dtc_ctx_free(ctx)
		return errServerClosed
	}
	C.dtc_ctx_free(s.ctx) // live SSLs keep the old context alive
	s.ctx = ctx
	return nil
}

// Close releases the server's OpenSSL context. Later Handshakes fail;
// established Conns keep working (each holds an OpenSSL reference to the
// context, dropped by Conn.Close). Close is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx != nil {
		C.dtc_ctx_free(s.ctx)
		s.ctx = nil
	}
	return nil
}

// Handshake runs the server side of a TLS 1.2 DHE handshake on raw. prefix
// holds the bytes already read from raw (the ClientHello records); they are
// processed before anything else is read.
//
// Config.MaxHandshakes caps the handshake steps running inside OpenSSL at
// once (each flight of the client is one step: about a millisecond of CPU
// for the ClientHello, less for the rest). A slot is held only while
// OpenSSL works on a flight, never while Handshake writes the server's
// flight or waits for the client's next one, so clients that stall
// mid-handshake hold no slot and delay nobody. Handshake fails at once if
// ctx is already done and gives up waiting for a slot when ctx ends. ctx's
// deadline (DefaultHandshakeTimeout from the start if ctx has none) becomes
// raw's deadline for the handshake, and cancelling ctx interrupts it too;
// the deadline is cleared before Handshake returns a Conn.
//
// Handshake takes ownership of raw: the returned Conn's Close closes it, and
// on error Handshake has closed it already (after sending OpenSSL's alert, if
// any). Errors include OpenSSL's error string and wrap ctx's error when ctx
// ended the handshake.
func (s *Server) Handshake(ctx context.Context, raw net.Conn, prefix []byte) (*Conn, error) {
	c, err := s.handshake(ctx, raw, prefix)
	if err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

func (s *Server) handshake(ctx context.Context, raw net.Conn, prefix []byte) (*Conn, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultHandshakeTimeout)
		defer cancel()
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("dhe: handshake: %w", context.Cause(ctx))
	}
	c, err := s.newConn(raw)
	if err != nil {
		return nil, err
	}
	d, _ := ctx.Deadline()
	if err := raw.SetDeadline(d); err != nil {
		c.free()
		return nil, fmt.Errorf("dhe: set handshake deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() {
		_ = raw.SetDeadline(time.Unix(1, 0)) // unblocks the handshake's I/O
	})
	err = c.handshake(ctx, s.slots, prefix)
	if !stop() {
		// ctx ended during the handshake: raw's deadline may have been
		// moved to the past, so the conn cannot be handed out.
		err = fmt.Errorf("%w (%w)", errOr(err), context.Cause(ctx))
	}
	if err == nil {
		if err = raw.SetDeadline(time.Time{}); err != nil {
			err = fmt.Errorf("dhe: clear handshake deadline: %w", err)
		}
	}
	if err != nil {
		c.free()
		return nil, err
	}
	return c, nil
}

// slots caps the handshake steps inside OpenSSL: one token per step.
type slots chan struct{}

// acquire takes a slot, waiting until ctx ends. It fails at once when ctx
// has ended already, even if a slot is free.
func (sl slots) acquire(ctx context.Context) error {
	if ctx.Err() != nil {
		return fmt.Errorf("dhe: handshake: %w", context.Cause(ctx))
	}
	select {
	case sl <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("dhe: wait for a handshake slot (all %d busy): %w", cap(sl), context.Cause(ctx))
	}
}

// release returns a slot taken by acquire.
func (sl slots) release() { <-sl }

// errOr returns err, or a placeholder when the handshake itself succeeded.
func errOr(err error) error {
	if err == nil {
		return errors.New("dhe: handshake completed too late")
	}
	return err
}

// newConn creates the Conn's SSL object from the server's context.
func (s *Server) newConn(raw net.Conn) (*Conn, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ctx == nil {
		return nil, errServerClosed
	}
	var st C.dtc_status
	ssl := C.dtc_ssl_new(s.ctx, &st)
	if ssl == nil {
		return nil, statusError("dhe: create SSL", &st)
	}
	return &Conn{raw: raw, ssl: ssl}, nil
}
