//go:build !cgo || nodhe

package dhe

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestStubUnavailable(t *testing.T) {
	if Available {
		t.Fatal("Available = true in a build without DHE")
	}
	_, err := NewServer(Config{CertFile: "c.pem", KeyFile: "k.pem"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("NewServer error = %v, want ErrUnavailable", err)
	}
	client, server := net.Pipe()
	defer client.Close()
	var s *Server
	if _, err := s.Handshake(context.Background(), server, nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Handshake error = %v, want ErrUnavailable", err)
	}
}
