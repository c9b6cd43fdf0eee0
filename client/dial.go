package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	quicgo "github.com/quic-go/quic-go"
	ztls "github.com/zmap/zcrypto/tls"
	zx509 "github.com/zmap/zcrypto/x509"
)

// suiteDHE is TLS_DHE_RSA_WITH_AES_256_GCM_SHA384, the only suite the 2017
// Android client offers.
const suiteDHE = 0x009f

// pinCheck remembers a certificate check's failure during a handshake, so
// that Dial can report it (a *PinError, say) even when the TLS or QUIC
// stack wraps it in an alert of its own.
type pinCheck struct {
	pin pin
	mu  sync.Mutex
	err error
}

// fail records err, if any, and returns it.
func (p *pinCheck) fail(err error) error {
	if err != nil {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
	}
	return err
}

// explain returns the check's failure if there was one, else err.
func (p *pinCheck) explain(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	return err
}

// tlsConfig is the crypto/tls client configuration for a server called
// serverName. With a pin: no CA verification, the leaf must match the
// pin. In CA mode: crypto/tls's own verification against the roots and
// serverName.
func (p *pinCheck) tlsConfig(serverName string) *tls.Config {
	if p.pin.ca {
		return &tls.Config{ServerName: serverName, RootCAs: p.pin.roots}
	}
	return &tls.Config{
		ServerName:         serverName,
		InsecureSkipVerify: true, // self-signed servers: the pin replaces the CA check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			return p.fail(p.pin.verifyLeaf(cs.PeerCertificates[0]))
		},
	}
}

// verifyRaw checks the certificates a server sent (DER, leaf first) the
// way tlsConfig's crypto/tls would, for the zcrypto handshake: against
// the pin, or in CA mode a chain from the leaf to the roots for
// serverName, for server authentication.
func (p *pinCheck) verifyRaw(raw [][]byte, serverName string) error {
	if len(raw) == 0 {
		return p.fail(errors.New("server sent no certificate"))
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return p.fail(fmt.Errorf("parse server certificate: %w", err))
		}
		certs[i] = c
	}
	if !p.pin.ca {
		return p.fail(p.pin.verifyLeaf(certs[0]))
	}
	opts := x509.VerifyOptions{Roots: p.pin.roots, DNSName: serverName, Intermediates: x509.NewCertPool()}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := certs[0].Verify(opts); err != nil { // KeyUsages default to server auth
		return p.fail(&tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err})
	}
	return nil
}

// dialTLS connects to a legacy port and shakes hands, checking the server
// certificate; the connection within o.DialTimeout, all within o.Timeout
// and ctx. It returns the TLS connection and the TCP socket under it.
func dialTLS(ctx context.Context, o *Options, p pin, port int) (net.Conn, net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	addr := net.JoinHostPort(o.Server, strconv.Itoa(port))
	d := net.Dialer{Timeout: o.DialTimeout} // TCP keep-alive on by default (15 s): a dead server is noticed
	if o.LocalAddr != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(o.LocalAddr)}
	}
	dial := d.DialContext
	if hook := dialTCPForTest.Load(); hook != nil {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) { return (*hook)(ctx, &d, addr) }
	}
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, explainTCP(o.Server, port, err)
	}
	check := &pinCheck{pin: p}
	var conn net.Conn
	if o.TLS12DHEOnly {
		conn, err = handshakeDHE(ctx, raw, check, o.ServerName)
	} else {
		c := tls.Client(raw, check.tlsConfig(o.ServerName))
		conn, err = c, c.HandshakeContext(ctx)
	}
	if err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("TLS handshake with %s: %w", addr, check.explain(err))
	}
	return conn, raw, nil
}

// explainTCP says what to check when a legacy port does not answer.
func explainTCP(host string, port int, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("nothing listens on TCP port %d on %s: is dtoperator running? (%w)", port, host, err)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no answer from TCP port %d on %s: is dtoperator running, is the port open? (%w)", port, host, err)
	}
	return fmt.Errorf("connect to %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
}

// handshakeDHE shakes hands like the 2017 Android client: TLS 1.2, only
// TLS_DHE_RSA_WITH_AES_256_GCM_SHA384. zcrypto's own verification is off
// (its x509 is a scanner's, lenient by design); check.verifyRaw checks the
// pin or the CA chain and serverName with crypto/x509 instead, as soon as
// the server's certificate arrives. It sends no SNI (the server ignores it).
func handshakeDHE(ctx context.Context, raw net.Conn, check *pinCheck, serverName string) (net.Conn, error) {
	c := ztls.Client(raw, &ztls.Config{
		InsecureSkipVerify: true, // verified below
		VerifyPeerCertificate: func(certs [][]byte, _ []zx509.CertificateChain) error {
			return check.verifyRaw(certs, serverName)
		},
		CipherSuites: []uint16{suiteDHE},
		ForceSuites:  true,
		MinVersion:   ztls.VersionTLS12,
		MaxVersion:   ztls.VersionTLS12,
	})
	if err := c.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	if st := c.ConnectionState(); st.CipherSuite != suiteDHE {
		return nil, fmt.Errorf("server chose cipher suite %#04x, not DHE", st.CipherSuite)
	}
	return c, nil
}

// Idle and keep-alive settings of the client's QUIC connection. The
// keep-alive keeps mobile NAT mappings (about 30 s) open; the server's
// idle timeout (default 60 s) applies too, the smaller one wins.
const (
	quicIdleTimeout = 60 * time.Second
	quicKeepAlive   = 15 * time.Second
)

// quicLink is a client's QUIC connection and the sockets under it: the one
// it dialed from and any it migrated to. Everything stays open until close.
type quicLink struct {
	conn *quicgo.Conn

	mu         sync.Mutex
	transports []*quicgo.Transport // guarded by mu; first is the dial socket's
	closed     bool                // guarded by mu
}

// dialQUIC dials the QUIC front from a socket of its own (so that it can
// migrate later) and opens the command stream.
func dialQUIC(ctx context.Context, o *Options, p pin) (*quicLink, *quicgo.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	raddr, err := (&net.Resolver{}).LookupNetIP(ctx, "ip", o.Server)
	if err != nil || len(raddr) == 0 {
		return nil, nil, fmt.Errorf("resolve %s: %w", o.Server, err)
	}
	ua := &net.UDPAddr{IP: raddr[0].Unmap().AsSlice(), Port: o.QUICPort}
	tr, err := listenUDP(ua, o.LocalAddr)
	if err != nil {
		return nil, nil, err
	}
	check := &pinCheck{pin: p}
	tc := check.tlsConfig(o.ServerName)
	tc.MinVersion = tls.VersionTLS13
	tc.NextProtos = []string{ALPN}
	qc, err := tr.Dial(ctx, ua, tc, &quicgo.Config{
		HandshakeIdleTimeout: o.DialTimeout,
		MaxIdleTimeout:       quicIdleTimeout,
		KeepAlivePeriod:      quicKeepAlive,
		EnableDatagrams:      o.Transport == QUICDatagram,
	})
	if err != nil {
		tr.Close()
		tr.Conn.Close()
		return nil, nil, explainQUIC(o.Server, o.QUICPort, check.explain(err))
	}
	link := &quicLink{conn: qc, transports: []*quicgo.Transport{tr}}
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		link.close()
		return nil, nil, fmt.Errorf("open command stream: %w", err)
	}
	return link, st, nil
}

// alertNoALPN is the CRYPTO_ERROR for TLS alert no_application_protocol.
const alertNoALPN = 0x100 + 120

// explainQUIC makes a failed QUIC handshake readable: an ALPN refusal, or
// a server that never answered (UDP gives no "connection refused").
func explainQUIC(host string, port int, err error) error {
	var te *quicgo.TransportError
	var hte *quicgo.HandshakeTimeoutError
	var ite *quicgo.IdleTimeoutError
	switch {
	case errors.As(err, &te) && te.ErrorCode == alertNoALPN:
		return fmt.Errorf("QUIC handshake with %s: the server does not speak %s over QUIC: %w", host, ALPN, err)
	case errors.As(err, &hte), errors.As(err, &ite), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer from UDP port %d on %s: is dtoperator running, is UDP open? (%w)", port, host, err)
	}
	return fmt.Errorf("QUIC handshake with %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
}

// listenUDP opens a UDP socket toward raddr's address family, on local
// (an IP, or IP:port; "" = any address), as a quic-go Transport.
func listenUDP(raddr *net.UDPAddr, local string) (*quicgo.Transport, error) {
	network := "udp6"
	if raddr.IP.To4() != nil {
		network = "udp4"
	}
	var la *net.UDPAddr
	if local != "" {
		host, port := local, 0
		if h, p, err := net.SplitHostPort(local); err == nil {
			n, err := strconv.Atoi(p)
			if err != nil {
				return nil, fmt.Errorf("local address %q: bad port", local)
			}
			host, port = h, n
		}
		ip := net.ParseIP(host)
		if ip == nil {
			return nil, fmt.Errorf("local address %q is not an IP address", local)
		}
		la = &net.UDPAddr{IP: ip, Port: port}
	}
	pc, err := net.ListenUDP(network, la)
	if err != nil {
		return nil, fmt.Errorf("open UDP socket: %w", err)
	}
	if wrap := wrapUDPForTest.Load(); wrap != nil {
		return &quicgo.Transport{Conn: (*wrap)(pc)}, nil
	}
	return &quicgo.Transport{Conn: pc}, nil
}

// wrapUDPForTest, when set, wraps every UDP socket the package opens (a
// test hook to watch traffic).
var wrapUDPForTest atomic.Pointer[func(net.PacketConn) net.PacketConn]

// dialTCPForTest, when set, makes every TCP connection the package opens
// (a test's dial in a network namespace of its own, say).
var dialTCPForTest atomic.Pointer[func(context.Context, *net.Dialer, string) (net.Conn, error)]

// migrate moves the connection to a new socket on local: probe the new
// path, then switch to it. The old socket stays open until close (closing
// it would kill the connection while packets are in flight).
func (l *quicLink) migrate(ctx context.Context, local string) error {
	ua, ok := l.conn.RemoteAddr().(*net.UDPAddr)
	if !ok {
		return errors.New("migrate: remote address is not UDP")
	}
	tr, err := listenUDP(ua, local)
	if err != nil {
		return err
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		tr.Close()
		tr.Conn.Close()
		return ErrClosed
	}
	l.transports = append(l.transports, tr)
	l.mu.Unlock()
	path, err := l.conn.AddPath(tr)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := path.Probe(ctx); err != nil {
		path.Close()
		return fmt.Errorf("migrate: probe new path from %s: %w", tr.Conn.LocalAddr(), err)
	}
	if err := path.Switch(); err != nil {
		path.Close()
		return fmt.Errorf("migrate: switch to %s: %w", tr.Conn.LocalAddr(), err)
	}
	return nil
}

// close closes the connection, then every socket it used.
func (l *quicLink) close() {
	l.conn.CloseWithError(0, "")
	l.mu.Lock()
	trs := l.transports
	l.transports, l.closed = nil, true
	l.mu.Unlock()
	for _, tr := range trs {
		tr.Close()
		tr.Conn.Close()
	}
}
