package clienthello

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
)

// Errors that Read wraps with details; test with errors.Is. Read errors that
// come from the connection (io.EOF, io.ErrUnexpectedEOF, timeouts) are
// wrapped unchanged.
var (
	// ErrNotTLS: the first byte is not a TLS handshake record (HTTP, a port
	// scanner, an SSLv2-style hello).
	ErrNotTLS = errors.New("not a TLS handshake")
	// ErrNotClientHello: TLS, but the first handshake message is another one.
	ErrNotClientHello = errors.New("first handshake message is not a ClientHello")
	// ErrTooLarge: a record or the whole ClientHello exceeds the limit.
	ErrTooLarge = errors.New("ClientHello too large")
	// ErrMalformed: the records or the ClientHello do not parse.
	ErrMalformed = errors.New("malformed ClientHello")
)

// Read reads whole TLS records from conn until it holds one complete
// ClientHello handshake message, and parses it. It returns the parsed hello
// and every byte it consumed, which the caller replays to the TLS engine it
// picks (see ReplayConn). On error the bytes consumed so far are returned too
// (for logging); the connection is then useless for TLS.
//
// Read consumes at most limit bytes (DefaultLimit when limit <= 0) and never
// reads past the last record it needs: it reads each record header, then
// exactly that record's body, so no later bytes are swallowed.
//
// Read blocks until the hello is complete or conn fails; the caller sets the
// read deadline beforehand and clears it afterwards. Read does not close conn.
func Read(conn net.Conn, limit int) (*Hello, []byte, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	raw := make([]byte, 0, 512)
	var msg []byte // handshake bytes assembled from the record bodies
	// Every record carries at least one byte and raw is capped at limit,
	// so this loop runs at most limit/(recordHeaderLen+1) times.
	for record := 0; ; record++ {
		var body []byte
		var err error
		raw, body, err = readRecord(conn, raw, record, limit)
		if err != nil {
			return nil, raw, err
		}
		msg = append(msg, body...)
		n, err := messageLen(msg, limit-len(raw)+len(msg))
		if err != nil {
			return nil, raw, err
		}
		if n < 0 || len(msg) < n {
			continue
		}
		h, err := parse(msg[handshakeHeaderLen:n])
		if err != nil {
			return nil, raw, err
		}
		return h, raw, nil
	}
}

// readRecord appends one whole record (header and body) to raw and returns the
// grown raw and the record's body. record is the index of this record (0 for
// the first); limit caps len(raw).
func readRecord(conn net.Conn, raw []byte, record, limit int) (grown, body []byte, err error) {
	start := len(raw)
	// The type byte is read alone, so a peer speaking something else is
	// told apart at once, even if it sent fewer than 5 bytes and waits.
	raw, err = readN(conn, raw, 1)
	if err != nil {
		if record > 0 && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return raw, nil, fmt.Errorf("clienthello: read record %d header: %w", record, err)
	}
	if typ := raw[start]; typ != recordTypeHandshake {
		if record == 0 {
			return raw, nil, fmt.Errorf("clienthello: first byte 0x%02x is not a TLS handshake record (22): %w", typ, ErrNotTLS)
		}
		return raw, nil, fmt.Errorf("clienthello: record %d has type %d, want handshake (22): %w", record, typ, ErrMalformed)
	}
	raw, err = readN(conn, raw, recordHeaderLen-1)
	if err != nil {
		return raw, nil, fmt.Errorf("clienthello: read record %d header: %w", record, unexpected(err))
	}
	hdr := raw[start:]
	if hdr[1] != 3 {
		return raw, nil, fmt.Errorf("clienthello: record version 0x%02x%02x is not TLS: %w", hdr[1], hdr[2], ErrNotTLS)
	}
	n := int(binary.BigEndian.Uint16(hdr[3:5]))
	switch {
	case n == 0:
		return raw, nil, fmt.Errorf("clienthello: record %d is empty: %w", record, ErrMalformed)
	case n > maxPlaintextRecordLen:
		return raw, nil, fmt.Errorf("clienthello: record %d of %d bytes exceeds the TLS maximum of %d: %w", record, n, maxPlaintextRecordLen, ErrTooLarge)
	case len(raw)+n > limit:
		return raw, nil, fmt.Errorf("clienthello: record %d of %d bytes takes the hello past the limit of %d bytes: %w", record, n, limit, ErrTooLarge)
	}
	raw, err = readN(conn, raw, n)
	if err != nil {
		return raw, nil, fmt.Errorf("clienthello: read record %d body (%d bytes): %w", record, n, unexpected(err))
	}
	return raw, raw[start+recordHeaderLen:], nil
}

// messageLen returns the total length (header included) of the handshake
// message at the start of msg, or -1 if its header is still incomplete. It
// refuses a message that is not a ClientHello or longer than room bytes.
func messageLen(msg []byte, room int) (int, error) {
	if len(msg) > 0 && msg[0] != handshakeClientHello {
		return 0, fmt.Errorf("clienthello: handshake message type %d: %w", msg[0], ErrNotClientHello)
	}
	if len(msg) < handshakeHeaderLen {
		return -1, nil
	}
	n := handshakeHeaderLen + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
	if n > room {
		return 0, fmt.Errorf("clienthello: ClientHello of %d bytes exceeds the limit: %w", n, ErrTooLarge)
	}
	return n, nil
}

// readN appends exactly n bytes read from conn to buf.
func readN(conn net.Conn, buf []byte, n int) ([]byte, error) {
	start := len(buf)
	buf = slices.Grow(buf, n)[:start+n]
	got, err := io.ReadFull(conn, buf[start:])
	return buf[:start+got], err
}

// unexpected turns io.EOF in the middle of a record into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
