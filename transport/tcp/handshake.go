package tcp

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/dtcall/dtcall/transport/tcp/clienthello"
)

// maxClientHello caps the bytes read before the TLS engine is chosen.
const maxClientHello = 16 << 10

// secure reads the ClientHello from nc and completes the handshake with the
// engine that can serve the client: OpenSSL when it offers a DHE suite and
// nothing crypto/tls accepts (the 2017 Android client), crypto/tls for
// everyone else with the bytes already read replayed. All of it runs within
// the handshake timeout, and ends early (nc's deadline is moved to the past)
// when ctx ends.
func (s *Server) secure(ctx context.Context, nc net.Conn, log *slog.Logger) (secureConn, error) {
	sc, dhe, err := s.shakeHands(ctx, nc, log)
	s.handshakes.count(dhe, err)
	return sc, err
}

// shakeHands is secure; dhe says which engine ran.
func (s *Server) shakeHands(ctx context.Context, nc net.Conn, log *slog.Logger) (_ secureConn, dhe bool, _ error) {
	ctx, cancel := context.WithTimeout(ctx, s.handshake)
	defer cancel()
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	defer nc.SetDeadline(time.Time{})

	// Both engines watch ctx themselves; the ClientHello reader does not.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	hello, raw, err := clienthello.Read(nc, maxClientHello)
	if !stop() {
		return nil, false, fmt.Errorf("read ClientHello: %w", context.Cause(ctx))
	}
	if err != nil {
		return nil, false, fmt.Errorf("read ClientHello: %w", err)
	}
	if hello.NeedsDHE(s.goSuites) {
		if s.dhe == nil {
			return nil, true, fmt.Errorf("client offers only DHE cipher suites and DHE support is not compiled in")
		}
		dc, err := s.dhe.Handshake(ctx, nc, raw)
		if err != nil {
			return nil, true, fmt.Errorf("OpenSSL handshake: %w", err)
		}
		version, suite := dc.ConnectionState()
		log.Debug("TLS established", "dir", "inbound", "engine", "openssl", "version", version, "suite", suite)
		return dc, true, nil
	}
	var under net.Conn = clienthello.NewReplayConn(nc, raw)
	if ts := newTrySocket(under, nc); ts != nil {
		under = ts
	}
	tc := tls.Server(under, s.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, false, fmt.Errorf("crypto/tls handshake: %w", err)
	}
	st := tc.ConnectionState()
	log.Debug("TLS established", "dir", "inbound", "engine", "crypto/tls",
		"version", tls.VersionName(st.Version), "suite", tls.CipherSuiteName(st.CipherSuite))
	return tc, false, nil
}
