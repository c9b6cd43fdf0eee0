// Package clienthello reads and parses the first TLS ClientHello on a raw
// connection, so a listener can pick a TLS engine before any engine sees the
// bytes: crypto/tls for everyone, OpenSSL for legacy clients that offer only
// finite-field DHE cipher suites (2017 Android).
//
// The bytes read are returned unchanged; wrap the connection in a ReplayConn
// so the chosen engine reads them again from the start.
package clienthello

// TLS record layer (RFC 5246 section 6.2.1), as a client sends it before any
// keys exist:
//
//	byte 0     content type (22 = handshake)
//	bytes 1-2  legacy record version, major byte 3 (0x0301 .. 0x0303)
//	bytes 3-4  length of the fragment that follows, big endian, 1 .. 16384
//
// A handshake message inside the fragments (RFC 5246 section 7.4):
//
//	byte 0     handshake type (1 = ClientHello)
//	bytes 1-3  body length, big endian
//
// A handshake message may be split across several records.
const (
	recordHeaderLen    = 5
	handshakeHeaderLen = 4

	recordTypeHandshake   = 22
	handshakeClientHello  = 1
	maxPlaintextRecordLen = 16384 // 2^14, RFC 5246 section 6.2.1

	// DefaultLimit is the cap on the bytes Read consumes when the caller
	// passes a limit <= 0. Real ClientHellos are a few hundred bytes (about
	// 2 KiB with post-quantum key shares).
	DefaultLimit = 16 << 10
)

// TLS protocol versions as they appear in hellos.
const (
	VersionTLS10 = 0x0301
	VersionTLS11 = 0x0302
	VersionTLS12 = 0x0303
	VersionTLS13 = 0x0304
)

// Extension numbers this package reads (IANA TLS ExtensionType registry).
const (
	extServerName        = 0
	extSupportedVersions = 43
)
