package client

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

// cmdChannel is a framed command channel. One goroutine reads (the
// Client's readLoop); writes are serialized by Client.wmu. close unblocks
// both and may be called any number of times.
type cmdChannel interface {
	// readMessage returns the next message without framing; the slice is
	// valid until the next call.
	readMessage() ([]byte, error)
	// writeMessage sends msg as one message, within the deadline.
	writeMessage(msg []byte, deadline time.Time) error
	close() error
}

// recordChannel is a legacy TLS connection: one message is one TLS record.
// Commands go out with one Write each (one record); a reply is read with
// one Read into a buffer that holds the largest record, which crypto/tls
// (and zcrypto) fill from one record at most.
type recordChannel struct {
	conn net.Conn
	buf  []byte // owned by the reader
}

// maxRecord is the largest TLS record plaintext.
const maxRecord = 16384

func newRecordChannel(conn net.Conn) *recordChannel {
	return &recordChannel{conn: conn, buf: make([]byte, maxRecord)}
}

func (r *recordChannel) readMessage() ([]byte, error) {
	for {
		n, err := r.conn.Read(r.buf)
		if n > 0 {
			return r.buf[:n], nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (r *recordChannel) writeMessage(msg []byte, deadline time.Time) error {
	r.conn.SetWriteDeadline(deadline)
	_, err := r.conn.Write(msg)
	return err
}

func (r *recordChannel) close() error { return r.conn.Close() }

// lineChannel is the QUIC command stream: every message ends with exactly
// one "\n" in both directions.
type lineChannel struct {
	st *quicgo.Stream
	br *bufio.Reader // owned by the reader
}

// maxLine bounds a reply line; replies are a few dozen bytes.
const maxLine = 4096

func newLineChannel(st *quicgo.Stream) *lineChannel {
	return &lineChannel{st: st, br: bufio.NewReaderSize(st, maxLine)}
}

var errLongLine = errors.New("server sent a line longer than 4096 bytes")

func (l *lineChannel) readMessage() ([]byte, error) {
	line, err := l.br.ReadSlice('\n')
	switch {
	case err == nil:
		return line[:len(line)-1], nil
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, errLongLine
	}
	return nil, err
}

func (l *lineChannel) writeMessage(msg []byte, deadline time.Time) error {
	l.st.SetWriteDeadline(deadline)
	line := make([]byte, 0, len(msg)+1)
	_, err := l.st.Write(append(append(line, msg...), '\n'))
	return err
}

func (l *lineChannel) close() error {
	l.st.CancelRead(0)
	return l.st.Close()
}

// readError explains why a command channel ended.
func readError(err error) error {
	var appErr *quicgo.ApplicationError
	if errors.As(err, &appErr) && appErr.Remote {
		return fmt.Errorf("server closed the connection (code %#x %s): %w", uint64(appErr.ErrorCode), appErr.ErrorMessage, err)
	}
	return fmt.Errorf("command channel: %w", err)
}
