package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
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

	// Exactly one of PinFile and PinSHA256 must be set: the server's
	// certificates are self-signed, so the client checks the leaf
	// certificate against a pin instead of a CA.
	//
	// PinFile is a PEM file holding the server certificate (its first
	// CERTIFICATE block is the pin).
	PinFile string
	// PinSHA256 is "sha256:" and the hex SHA-256 of the leaf certificate's
	// DER encoding, as dtoperator logs it at start.
	PinSHA256 string

	// TLS12DHEOnly makes a TCP client speak like the 2017 Android client:
	// TLS 1.2 offering only TLS_DHE_RSA_WITH_AES_256_GCM_SHA384 (through
	// zcrypto, since crypto/tls has no DHE). Ignored over QUIC.
	TLS12DHEOnly bool

	// Timeout bounds each request (dial, handshake, a command and its
	// reply); default DefaultTimeout.
	Timeout time.Duration
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
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.Keepalive == 0 {
		o.Keepalive = DefaultKeepalive
	}
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

// pin is the SHA-256 of the server's leaf certificate.
type pin [sha256.Size]byte

func (p pin) String() string { return "sha256:" + hex.EncodeToString(p[:]) }

// loadPin reads the pin from exactly one of PinFile and PinSHA256.
func (o *Options) loadPin() (pin, error) {
	switch {
	case o.PinFile != "" && o.PinSHA256 != "":
		return pin{}, errors.New("give either a pin file or a sha256 pin, not both")
	case o.PinFile != "":
		return pinFromFile(o.PinFile)
	case o.PinSHA256 != "":
		return parsePin(o.PinSHA256)
	}
	return pin{}, errors.New("no certificate pin: set a pin file or a sha256 pin")
}

// parsePin parses "sha256:HEX" (64 hex digits, either case; colons between
// byte pairs are allowed).
func parsePin(s string) (pin, error) {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return pin{}, fmt.Errorf("pin %q: want sha256:<64 hex digits>", s)
	}
	b, err := hex.DecodeString(strings.ReplaceAll(h, ":", ""))
	if err != nil || len(b) != sha256.Size {
		return pin{}, fmt.Errorf("pin %q: want sha256:<64 hex digits>", s)
	}
	return pin(b), nil
}

func pinFromFile(path string) (pin, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return pin{}, fmt.Errorf("read pin file: %w", err)
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return pin{}, fmt.Errorf("pin file %s: no PEM CERTIFICATE block", path)
		}
		if b.Type == "CERTIFICATE" {
			return sha256.Sum256(b.Bytes), nil
		}
	}
}

// PinError says that the server's certificate is not the pinned one: the
// wrong server, a changed certificate, or someone in the middle.
type PinError struct {
	Got, Want string // "sha256:..." of the server's leaf and of the pin
}

func (e *PinError) Error() string {
	return "server certificate " + e.Got + " does not match the pinned " + e.Want +
		" (wrong server, changed certificate, or someone in the middle)"
}

// verify checks the leaf certificate's DER against the pin.
func (p pin) verify(leaf []byte) error {
	got := pin(sha256.Sum256(leaf))
	if !bytes.Equal(got[:], p[:]) {
		return &PinError{Got: got.String(), Want: p.String()}
	}
	return nil
}
