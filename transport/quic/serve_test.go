package quic_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/internal/testserver"
	"github.com/dtcall/dtcall/transport/quic"
)

func newServer(t *testing.T) *quic.Server {
	t.Helper()
	cert := testcert.Write(t)
	srv, err := quic.New(quic.Config{CertFile: cert.CertFile, KeyFile: cert.KeyFile}, core.New(core.Config{}, nil, testserver.Logger()), testserver.Logger())
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// TestServeFailureIsReported: when the socket fails under a running front
// (here: closed behind its back), Serve returns an error; after Close it
// returns nil, and a Serve after Close refuses at once.
func TestServeFailureIsReported(t *testing.T) {
	srv := newServer(t)
	defer srv.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(pc) }()
	time.Sleep(100 * time.Millisecond)
	pc.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Serve returned nil after its socket failed")
		}
		t.Logf("Serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its socket failed")
	}

	pc2, _ := net.ListenPacket("udp", "127.0.0.1:0")
	go func() { done <- srv.Serve(pc2) }()
	time.Sleep(100 * time.Millisecond)
	srv.Close()
	if err := <-done; err != nil {
		t.Fatalf("Serve after Close: %v, want nil", err)
	}
	pc3, _ := net.ListenPacket("udp", "127.0.0.1:0")
	if err := srv.Serve(pc3); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve on a closed server: %v", err)
	}
}
