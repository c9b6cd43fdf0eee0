package client

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

// Defaults of the dial retries (Options.DialRetries, RetryBackoff,
// RetryMaxBackoff).
const (
	DefaultDialRetries     = 8
	DefaultRetryBackoff    = 100 * time.Millisecond
	DefaultRetryMaxBackoff = 2 * time.Second
)

// dialRetrying runs dial until it succeeds, fails in a way a retry cannot
// mend (retryable), ctx ends, or o.DialRetries retries are spent. Before
// retry n (from 0) it sleeps a random time in [0, min(o.RetryMaxBackoff,
// o.RetryBackoff*2^n)) ("full jitter"), so that clients refused together
// come back spread out. All attempts and sleeps are within ctx and
// o.Timeout: a sleep that would end past that deadline is not taken, and
// the last attempt's error is returned.
func dialRetrying(ctx context.Context, o *Options, dial func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	for n := 0; ; n++ {
		err := dial(ctx)
		if err == nil || n >= o.DialRetries || !retryable(err) || ctx.Err() != nil {
			return err
		}
		d := backoff(o.RetryBackoff, o.RetryMaxBackoff, n)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
			return err
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// backoff is the sleep before retry n: uniform in [0, min(max,
// base*2^n)).
func backoff(base, max time.Duration, n int) time.Duration {
	d := max
	if n < 30 && base<<n < max && base<<n > 0 {
		d = base << n
	}
	return rand.N(d) // d > 0: setDefaults
}

// retryable reports whether a failed dial may succeed if tried again: the
// server refused it before the session began (QUIC CONNECTION_REFUSED,
// which the QUIC front sends when a connection limit is reached or the
// source is banned; a TCP connection refused, or reset or closed during
// the TLS handshake, which the legacy front does to a source with too
// many handshakes in progress), or no answer came in time. A certificate
// or pin mismatch, an ALPN refusal and the caller's cancellation are
// final.
func retryable(err error) bool {
	var te *quicgo.TransportError
	var hte *quicgo.HandshakeTimeoutError
	var ite *quicgo.IdleTimeoutError
	var ne net.Error
	var pe *PinError
	switch {
	case errors.Is(err, context.Canceled), errors.As(err, &pe):
		return false
	case errors.As(err, &te):
		return te.ErrorCode == quicgo.ConnectionRefused && te.Remote
	case errors.As(err, &hte), errors.As(err, &ite):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return true
	}
	return false
}
