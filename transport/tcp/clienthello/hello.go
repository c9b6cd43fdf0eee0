package clienthello

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// Hello is the part of a ClientHello that routing needs.
type Hello struct {
	// LegacyVersion is the client_version field (0x0303 for TLS 1.2 and 1.3).
	LegacyVersion uint16
	// CipherSuites lists the offered suites in the client's order.
	CipherSuites []uint16
	// SupportedVersions is the supported_versions extension, or
	// LegacyVersion alone when the extension is absent.
	SupportedVersions []uint16
	// ServerName is the first host_name of the server_name extension (SNI),
	// "" when absent. It is not validated: quote it when logging.
	ServerName string
}

// parse parses a ClientHello body (RFC 8446 section 4.1.2, which also covers
// TLS 1.0-1.2 hellos):
//
//	uint16 legacy_version
//	opaque random[32]
//	opaque legacy_session_id<0..32>
//	uint16 cipher_suites<2..2^16-2>
//	uint8  legacy_compression_methods<1..2^8-1>
//	Extension extensions<0..2^16-1>  (may be absent before TLS 1.3)
func parse(body []byte) (*Hello, error) {
	s := cryptobyte.String(body)
	h := &Hello{}
	var random []byte
	var sessionID, suites, compression cryptobyte.String
	if !s.ReadUint16(&h.LegacyVersion) || !s.ReadBytes(&random, 32) ||
		!s.ReadUint8LengthPrefixed(&sessionID) || len(sessionID) > 32 ||
		!s.ReadUint16LengthPrefixed(&suites) || len(suites) < 2 || len(suites)%2 != 0 ||
		!s.ReadUint8LengthPrefixed(&compression) || compression.Empty() {
		return nil, fmt.Errorf("clienthello: fixed fields: %w", ErrMalformed)
	}
	h.CipherSuites = make([]uint16, 0, len(suites)/2)
	for !suites.Empty() { // shrinks by 2 bytes per pass
		var id uint16
		suites.ReadUint16(&id) // cannot fail: even length checked above
		h.CipherSuites = append(h.CipherSuites, id)
	}
	if !s.Empty() {
		var exts cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
			return nil, fmt.Errorf("clienthello: extensions block: %w", ErrMalformed)
		}
		if err := h.parseExtensions(exts); err != nil {
			return nil, err
		}
	}
	if h.SupportedVersions == nil {
		h.SupportedVersions = []uint16{h.LegacyVersion}
	}
	return h, nil
}

// parseExtensions reads the extensions this package uses and skips the rest.
func (h *Hello) parseExtensions(exts cryptobyte.String) error {
	seen := make(map[uint16]bool, 16)
	for !exts.Empty() { // shrinks by at least 4 bytes per pass
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return fmt.Errorf("clienthello: extension header: %w", ErrMalformed)
		}
		if seen[typ] {
			return fmt.Errorf("clienthello: duplicate extension %d: %w", typ, ErrMalformed)
		}
		seen[typ] = true
		var err error
		switch typ {
		case extServerName:
			err = h.parseServerName(data)
		case extSupportedVersions:
			err = h.parseSupportedVersions(data)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseServerName reads RFC 6066 section 3:
//
//	ServerName server_name_list<1..2^16-1>, each: uint8 name_type, opaque HostName<1..2^16-1>
func (h *Hello) parseServerName(data cryptobyte.String) error {
	var list cryptobyte.String
	if !data.ReadUint16LengthPrefixed(&list) || list.Empty() || !data.Empty() {
		return fmt.Errorf("clienthello: server_name extension: %w", ErrMalformed)
	}
	for !list.Empty() { // shrinks by at least 4 bytes per pass
		var nameType uint8
		var name cryptobyte.String
		if !list.ReadUint8(&nameType) || !list.ReadUint16LengthPrefixed(&name) || name.Empty() {
			return fmt.Errorf("clienthello: server_name entry: %w", ErrMalformed)
		}
		if nameType == 0 && h.ServerName == "" {
			h.ServerName = string(name)
		}
	}
	return nil
}

// parseSupportedVersions reads RFC 8446 section 4.2.1 (ClientHello form):
//
//	ProtocolVersion versions<2..254>
func (h *Hello) parseSupportedVersions(data cryptobyte.String) error {
	var list cryptobyte.String
	if !data.ReadUint8LengthPrefixed(&list) || len(list) < 2 || len(list)%2 != 0 || !data.Empty() {
		return fmt.Errorf("clienthello: supported_versions extension: %w", ErrMalformed)
	}
	h.SupportedVersions = make([]uint16, 0, len(list)/2)
	for !list.Empty() { // shrinks by 2 bytes per pass
		var v uint16
		list.ReadUint16(&v) // cannot fail: even length checked above
		h.SupportedVersions = append(h.SupportedVersions, v)
	}
	return nil
}
