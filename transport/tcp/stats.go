package tcp

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
)

// Handshake outcomes, as the metrics name them.
const (
	HandshakeOK      = "ok"
	HandshakeFailed  = "failed"
	HandshakeTimeout = "timeout"
)

// TLS engines of the legacy front, as the metrics name them.
const (
	EngineGo      = "crypto/tls"
	EngineOpenSSL = "openssl"
)

// handshakeCounts counts handshakes by engine and outcome. A connection
// that fails before its engine is chosen (a bad or missing ClientHello)
// counts for crypto/tls, the default engine.
type handshakeCounts struct {
	goTLS, openSSL [3]atomic.Int64 // ok, failed, timeout
}

func (h *handshakeCounts) count(dhe bool, err error) {
	c := &h.goTLS
	if dhe {
		c = &h.openSSL
	}
	var ne net.Error
	switch {
	case err == nil:
		c[0].Add(1)
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		c[2].Add(1)
	default:
		c[1].Add(1)
	}
}

// Why connections were closed right after accept, as the metrics name them.
const (
	// RefusedGate: Config.Gate refused the source (banned).
	RefusedGate = "banned"
	// RefusedPerSource: the source had Config.MaxHandshakesPerSource
	// connections shaking hands already.
	RefusedPerSource = "per_source"
	// RefusedEvicted: not a refusal of the new connection but of the
	// oldest one shaking hands, cut at Config.MaxHandshakes to make room.
	RefusedEvicted = "evicted"
)

// refusalCounts counts connections closed by the admission checks.
type refusalCounts struct {
	gate, perSource, evicted atomic.Int64
}

// Stats are the legacy front's counters, for metrics publishing.
type Stats struct {
	// Handshakes counts TLS handshakes by engine (EngineGo, EngineOpenSSL)
	// and outcome (HandshakeOK, HandshakeFailed, HandshakeTimeout).
	Handshakes map[string]map[string]int64
	// Refused counts connections closed before any TLS work, by reason
	// (RefusedGate, RefusedPerSource, RefusedEvicted). An evicted
	// connection also counts as a failed handshake.
	Refused map[string]int64
	// Handshaking is the number of connections in the handshake phase now
	// (accepted, TLS not done), on both ports.
	Handshaking int
}

// Stats returns a snapshot of the front's counters.
func (s *Server) Stats() Stats {
	outcomes := func(c *[3]atomic.Int64) map[string]int64 {
		return map[string]int64{HandshakeOK: c[0].Load(), HandshakeFailed: c[1].Load(), HandshakeTimeout: c[2].Load()}
	}
	return Stats{
		Handshakes: map[string]map[string]int64{
			EngineGo:      outcomes(&s.handshakes.goTLS),
			EngineOpenSSL: outcomes(&s.handshakes.openSSL),
		},
		Refused: map[string]int64{
			RefusedGate:      s.refused.gate.Load(),
			RefusedPerSource: s.refused.perSource.Load(),
			RefusedEvicted:   s.refused.evicted.Load(),
		},
		Handshaking: s.admission.count(),
	}
}
