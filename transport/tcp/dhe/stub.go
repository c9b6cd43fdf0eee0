//go:build !cgo || nodhe

package dhe

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Available reports whether this build can serve DHE clients.
const Available = false

// Server is a stand-in: this build has no DHE engine.
type Server struct{}

// NewServer always fails with an error wrapping ErrUnavailable.
func NewServer(cfg Config) (*Server, error) {
	return nil, fmt.Errorf("dhe: %w", ErrUnavailable)
}

// Close does nothing.
func (s *Server) Close() error { return nil }

// Reload fails with an error wrapping ErrUnavailable.
func (s *Server) Reload(cfg Config) error { return fmt.Errorf("dhe: %w", ErrUnavailable) }

// Handshake closes raw and fails with an error wrapping ErrUnavailable.
func (s *Server) Handshake(ctx context.Context, raw net.Conn, prefix []byte) (*Conn, error) {
	raw.Close()
	return nil, fmt.Errorf("dhe: %w", ErrUnavailable)
}

// Conn is a stand-in: no value of it is ever returned.
type Conn struct{}

// Read fails.
func (c *Conn) Read(p []byte) (int, error) { return 0, ErrUnavailable }

// Write fails.
func (c *Conn) Write(p []byte) (int, error) { return 0, ErrUnavailable }

// Close does nothing.
func (c *Conn) Close() error { return nil }

// LocalAddr returns nil.
func (c *Conn) LocalAddr() net.Addr { return nil }

// RemoteAddr returns nil.
func (c *Conn) RemoteAddr() net.Addr { return nil }

// SetDeadline fails.
func (c *Conn) SetDeadline(t time.Time) error { return ErrUnavailable }

// SetReadDeadline fails.
func (c *Conn) SetReadDeadline(t time.Time) error { return ErrUnavailable }

// SetWriteDeadline fails.
func (c *Conn) SetWriteDeadline(t time.Time) error { return ErrUnavailable }

// ConnectionState returns empty strings.
func (c *Conn) ConnectionState() (version, cipher string) { return "", "" }
