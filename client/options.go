package client

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Transport chooses how a Client reaches the server.
type Transport int

const (
	// TCP is the legacy pair of TLS connections: commands on the command
	// port, media on the media port (PROTOCOL.md sections 1-4).
	TCP Transport = iota
	// QUIC is one QUIC connection: commands on the first stream, media as
	// bytes on the second (PROTOCOL.md section 6, stream mode).
	QUIC
	// QUICDatagram is QUIC with media in DATAGRAM frames, one media packet
	// per datagram (section 6, datagram mode).
	QUICDatagram
)

func (t Transport) String() string {
	switch t {
	case TCP:
		return "tcp"
	case QUIC:
		return "quic"
	case QUICDatagram:
		return "quic-datagram"
	}
	return fmt.Sprintf("Transport(%d)", int(t))
}

func (t Transport) isQUIC() bool { return t == QUIC || t == QUICDatagram }

// ALPN is the QUIC application protocol token of the dtcall protocol.
const ALPN = "dtcall/1"

// Default ports.
const (
	DefaultCommandPort = 1991
	DefaultMediaPort   = 2014
	DefaultQUICPort    = 1991
)

// DefaultTimeout bounds each request when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// DefaultDialTimeout bounds the wait for a server's first answer when
// Options.DialTimeout is zero.
const DefaultDialTimeout = 3 * time.Second

// DefaultKeepalive is how often a Client sends a keepalive when
// Options.Keepalive is zero. The server closes a connection that has sent
// nothing for 10 minutes.
const DefaultKeepalive = 2 * time.Minute

// Options configure Dial.
type Options struct {
	// Server is the server's host name or IP address, without a port.
	Server string
	// CommandPort and MediaPort are the legacy TCP ports (default 1991 and
	// 2014); QUICPort is the UDP port of the QUIC front (default 1991).
	CommandPort, MediaPort, QUICPort int
	// Transport is TCP (the default), QUIC or QUICDatagram.
	Transport Transport

	// The client checks the server's certificate in exactly one way:
	// PinFile, PinKeyFile or PinSHA256 pin it (dtoperator's certificates
	// are self-signed), CAFile or SystemRoots verify it like any TLS
	// client (a chain to a trusted root, and ServerName). Dial fails when
	// none or more than one is set. A pin mismatch fails Dial with a
	// *PinError; a CA failure with the TLS stack's error (errors.As finds
	// an x509.UnknownAuthorityError, x509.HostnameError, ...).
	//
	// PinFile is a PEM file holding the server certificate: its first
	// CERTIFICATE block is pinned, the whole certificate. A renewed
	// certificate needs the new file, even with the same key.
	PinFile string
	// PinKeyFile is a PEM file holding the server certificate, or its
	// public key as a PUBLIC KEY block (openssl x509 -pubkey -noout): the
	// public key is pinned, so a certificate renewed with the same key
	// still matches.
	PinKeyFile string
	// PinSHA256 is a fingerprint, in one of the forms dtoperator logs at
	// start:
	//   - "sha256:HEX" (fingerprint=): the SHA-256 of the leaf
	//     certificate's DER, a certificate pin;
	//   - "spki:HEX" (spki=): the SHA-256 of the leaf's
	//     SubjectPublicKeyInfo, a public-key pin;
	//   - "sha256/BASE64" (spki_base64=): the same SHA-256 in standard
	//     base64, the form of HPKP and curl --pinnedpubkey (curl's
	//     "sha256//BASE64" is taken too).
	// HEX is 64 hex digits, either case, with optional colons between
	// bytes.
	PinSHA256 string
	// CAFile is a PEM bundle of CA certificates: the server's certificate
	// must chain to one of them (the system's roots are not used) and
	// cover ServerName.
	CAFile string
	// SystemRoots verifies the server's certificate against the system's
	// root CAs, and ServerName.
	SystemRoots bool
	// ServerName is the TLS server name (SNI) and, with CAFile or
	// SystemRoots, the name the certificate must cover: a host name, or an
	// IP address checked against the certificate's IP addresses. Default
	// Server.
	ServerName string

	// TLS12DHEOnly makes a TCP client speak like the 2017 Android client:
	// TLS 1.2 offering only TLS_DHE_RSA_WITH_AES_256_GCM_SHA384 (through
	// zcrypto, since crypto/tls has no DHE). Ignored over QUIC. Pins and
	// CA mode work as over crypto/tls: the chain and the name are checked
	// with crypto/x509, during the handshake.
	TLS12DHEOnly bool

	// Timeout bounds each request (dial and handshake with their retries,
	// a command and its reply); default DefaultTimeout.
	Timeout time.Duration
	// DialRetries is how many times Dial tries again a dial that was
	// refused or got no answer in time (see Dial); zero means
	// DefaultDialRetries, negative means never.
	DialRetries int
	// RetryBackoff bounds the random wait before Dial's first retry; each
	// retry doubles the bound, up to RetryMaxBackoff. Defaults
	// DefaultRetryBackoff (100 ms) and DefaultRetryMaxBackoff (2 s).
	RetryBackoff, RetryMaxBackoff time.Duration
	// DialTimeout bounds the wait for the server's first answer to a dial:
	// the TCP connection, or any QUIC packet (a QUIC server that is down
	// sends nothing back; there is no "connection refused" over UDP).
	// Default DefaultDialTimeout.
	DialTimeout time.Duration
	// Keepalive is how often the client sends a keepalive ("D") on its
	// command channel (and, over TCP, its media connection); zero means
	// DefaultKeepalive, negative means never.
	Keepalive time.Duration
	// LocalAddr is an optional local IP address to connect from.
	LocalAddr string
}

func (o *Options) setDefaults() {
	if o.CommandPort == 0 {
		o.CommandPort = DefaultCommandPort
	}
	if o.MediaPort == 0 {
		o.MediaPort = DefaultMediaPort
	}
	if o.QUICPort == 0 {
		o.QUICPort = DefaultQUICPort
	}
	if o.ServerName == "" {
		o.ServerName = o.Server
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.Keepalive == 0 {
		o.Keepalive = DefaultKeepalive
	}
	switch {
	case o.DialRetries == 0:
		o.DialRetries = DefaultDialRetries
	case o.DialRetries < 0:
		o.DialRetries = 0
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultRetryBackoff
	}
	if o.RetryMaxBackoff <= 0 {
		o.RetryMaxBackoff = DefaultRetryMaxBackoff
	}
	o.RetryMaxBackoff = max(o.RetryMaxBackoff, o.RetryBackoff)
}

func (o *Options) check() error {
	if o.Server == "" {
		return errors.New("no server given")
	}
	if o.Transport < TCP || o.Transport > QUICDatagram {
		return fmt.Errorf("unknown transport %v", o.Transport)
	}
	if o.LocalAddr != "" && net.ParseIP(o.LocalAddr) == nil {
		return fmt.Errorf("local address %q is not an IP address", o.LocalAddr)
	}
	return nil
}
