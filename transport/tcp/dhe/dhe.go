// Package dhe serves TLS 1.2 with finite-field DHE cipher suites, which Go's
// crypto/tls lacks, for legacy clients (2017 Android offers only
// TLS_DHE_RSA_WITH_AES_256_GCM_SHA384). It binds OpenSSL 3 through memory
// BIOs: Go owns the socket, reads and writes it with ordinary deadlines, and
// OpenSSL only transforms bytes; it never touches the socket and never calls
// back into Go.
//
// The listener reads the ClientHello itself (package clienthello) and passes
// those bytes to Server.Handshake as the prefix.
//
// Built without cgo or with -tags nodhe, the package keeps its API but
// NewServer fails with ErrUnavailable; Available tells which build this is.
package dhe

import (
	"errors"
	"runtime"
	"time"
)

// ErrUnavailable is returned (wrapped) by NewServer in builds without DHE.
var ErrUnavailable = errors.New("DHE support not compiled in (built without cgo or with -tags nodhe): clients offering only DHE cipher suites (2017 Android) cannot connect")

// DefaultHandshakeTimeout bounds Server.Handshake when its ctx has no
// deadline, so a silent client never holds its connection for long.
const DefaultHandshakeTimeout = 30 * time.Second

// DefaultCiphers is the OpenSSL cipher string used when Config.Ciphers is "":
// the AEAD DHE-RSA suites, strongest first.
const DefaultCiphers = "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256"

// Config configures a Server. Paths are read once, by NewServer.
type Config struct {
	// CertFile and KeyFile are PEM files. DHE_RSA suites need an RSA key;
	// CertFile may hold the chain after the leaf.
	CertFile, KeyFile string
	// DHParamsFile is an optional PEM file of "DH PARAMETERS" or
	// "X9.42 DH PARAMETERS" (the operator's dhfile). "" lets OpenSSL pick
	// an RFC 7919 group matching the certificate's strength.
	DHParamsFile string
	// Ciphers is an OpenSSL cipher string for TLS 1.2 (the operator's
	// ciphers setting); "" means DefaultCiphers. It must enable at least
	// one DHE-RSA suite.
	Ciphers string
	// MaxHandshakes caps the handshake steps running inside OpenSSL at once
	// (the ClientHello's costs about a millisecond of CPU, so this is the
	// lever against handshake floods); a handshake waiting for its client
	// holds none. <= 0 means 2*GOMAXPROCS.
	MaxHandshakes int
}

func (c Config) ciphers() string {
	if c.Ciphers == "" {
		return DefaultCiphers
	}
	return c.Ciphers
}

func (c Config) maxHandshakes() int {
	if c.MaxHandshakes <= 0 {
		return 2 * runtime.GOMAXPROCS(0)
	}
	return c.MaxHandshakes
}
