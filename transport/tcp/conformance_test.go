package tcp_test

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	ztls "github.com/zmap/zcrypto/tls"

	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/internal/testserver"
	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/transport/tcp"
	"github.com/dtcall/dtcall/transport/transporttest"
)

// The legacy record connection, command and media, through the real front
// on 127.0.0.1 with real TLS, against the transport conformance suite: once
// for each TLS engine (crypto/tls with TLS 1.3 and 1.2; OpenSSL for
// DHE-only clients, when compiled in).

var legacyCommandFraming = transporttest.Framing{
	MaxMessage: transport.MaxMessage, // one TLS record
}

var legacyMediaFraming = transporttest.Framing{
	Keepalive:   []byte("D"),
	MaxMedia:    transport.MaxMessage,
	NoDatagrams: true,
}

func TestConformance(t *testing.T) {
	f := startConformance(t)
	for _, kind := range []tlsKind{modern, ecdhe12, android17} {
		t.Run(kind.String(), func(t *testing.T) {
			if kind == android17 && !f.srv.DHEAvailable() {
				t.Skip("DHE engine not compiled in")
			}
			t.Run("Command", func(t *testing.T) { transporttest.TestConn(t, f.commandPipe(kind), legacyCommandFraming) })
			t.Run("Media", func(t *testing.T) { transporttest.TestMediaConn(t, f.mediaPipe(kind), legacyMediaFraming) })
		})
	}
}

// conformanceFront is the legacy front with a handler that hands the
// connections to the test.
type conformanceFront struct {
	srv              *tcp.Server
	h                *transporttest.Handler
	cert             testcert.Cert
	cmdAddr, mdsAddr string
}

func startConformance(t *testing.T) *conformanceFront {
	cert := testcert.Write(t)
	h := transporttest.NewHandler()
	srv, err := tcp.New(tcp.Config{CertFile: cert.CertFile, KeyFile: cert.KeyFile}, h, testserver.Logger())
	if err != nil {
		t.Fatal(err)
	}
	cmd, mds := listen(t), listen(t)
	done := make(chan struct{}, 2)
	go func() { srv.ServeCommand(cmd); done <- struct{}{} }()
	go func() { srv.ServeMedia(mds); done <- struct{}{} }()
	t.Cleanup(func() {
		srv.Close()
		<-done
		<-done
	})
	return &conformanceFront{srv: srv, h: h, cert: cert, cmdAddr: cmd.Addr().String(), mdsAddr: mds.Addr().String()}
}

// dial connects a record peer to addr.
func (f *conformanceFront) dial(t *testing.T, addr string, kind tlsKind) *recordPeer {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	// Records as large as the Write, from the first: a client's dynamic
	// record sizing would cut a 16 KiB message into several records.
	var c interface {
		net.Conn
		Handshake() error
	}
	if kind == android17 {
		c = ztls.Client(raw, &ztls.Config{
			InsecureSkipVerify: true, CipherSuites: []uint16{suiteDHE}, ForceSuites: true,
			MinVersion: ztls.VersionTLS12, MaxVersion: ztls.VersionTLS12,
			DynamicRecordSizingDisabled: true,
		})
	} else {
		cfg := &tls.Config{InsecureSkipVerify: true, DynamicRecordSizingDisabled: true}
		if kind == ecdhe12 {
			cfg.MaxVersion = tls.VersionTLS12
		}
		c = tls.Client(raw, cfg)
	}
	if err := c.Handshake(); err != nil {
		raw.Close()
		t.Fatalf("dial %s (%v): %v", addr, kind, err)
	}
	raw.SetDeadline(time.Time{})
	if zc, ok := c.(*ztls.Conn); ok && zc.ConnectionState().CipherSuite != suiteDHE {
		raw.Close()
		t.Fatalf("negotiated suite %#04x, want DHE", zc.ConnectionState().CipherSuite)
	}
	p := &recordPeer{c: c, buf: make([]byte, 2*transport.MaxMessage)}
	t.Cleanup(func() { p.Close() })
	return p
}

func (f *conformanceFront) commandPipe(kind tlsKind) transporttest.MakePipe {
	return func(t *testing.T) transporttest.Pipe {
		p := f.dial(t, f.cmdAddr, kind)
		return transporttest.Pipe{Conn: f.h.Command(t, p.LocalAddr()), Peer: p}
	}
}

// mediaPipe registers a media connection (the front does not parse the
// registration: it is the first record) and, for Origin, opens a command
// connection from the same client.
func (f *conformanceFront) mediaPipe(kind tlsKind) transporttest.MakeMediaPipe {
	return func(t *testing.T, early []byte) transporttest.MediaPipe {
		cp := f.dial(t, f.cmdAddr, kind)
		cmd := f.h.Command(t, cp.LocalAddr())
		p := f.dial(t, f.mdsAddr, kind)
		reg := []byte(now() + "|6144737382751829473")
		if err := p.WriteMessage(reg); err != nil {
			t.Fatal(err)
		}
		if early != nil {
			if err := p.WriteMedia(early); err != nil {
				t.Fatal(err)
			}
		}
		c := f.h.Media(t, p.LocalAddr())
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got, err := c.ReadMessage(); err != nil || string(got) != string(reg) {
			t.Fatalf("registration read as %q, %v", got, err)
		}
		c.SetReadDeadline(time.Time{})
		return transporttest.MediaPipe{Conn: c, Peer: p, Origin: cmd.Origin()}
	}
}

// recordPeer is a legacy client: one Write is one TLS record, one Read
// returns at most one.
type recordPeer struct {
	c   net.Conn // *tls.Conn or zcrypto's
	buf []byte   // owned by the reader
}

func (p *recordPeer) WriteMessage(msg []byte) error { _, err := p.c.Write(msg); return err }
func (p *recordPeer) WriteMedia(b []byte) error     { return p.WriteMessage(b) }

func (p *recordPeer) ReadMessage(deadline time.Time) ([]byte, error) {
	p.c.SetReadDeadline(deadline)
	for {
		n, err := p.c.Read(p.buf)
		if n > 0 {
			return append([]byte(nil), p.buf[:n]...), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (p *recordPeer) ReadMedia(deadline time.Time) ([]byte, error) { return p.ReadMessage(deadline) }

// Stall: not reading is enough; TCP's windows fill.
func (p *recordPeer) Stall() {}

func (p *recordPeer) WaitEnd(deadline time.Time) error {
	for {
		if _, err := p.ReadMessage(deadline); err != nil {
			var ne net.Error
			timeout := errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
			if timeout && !time.Now().Before(deadline) {
				return nil
			}
			return err
		}
	}
}

func (p *recordPeer) LocalAddr() netip.AddrPort {
	ap := p.c.LocalAddr().(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (p *recordPeer) Close() error { return p.c.Close() }
