//go:build cgo && !nodhe

package dhe

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/transport/tcp/clienthello"
	ztls "github.com/zmap/zcrypto/tls"
)

// suiteDHE is TLS_DHE_RSA_WITH_AES_256_GCM_SHA384, the 2017 Android suite.
const suiteDHE = 0x009f

// testKey is one RSA-2048 key for the whole test binary (generation is slow).
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// certFiles writes a self-signed certificate for key (nil: the shared RSA
// test key), and key, as PEM files. It returns the paths and the
// certificate DER.
func certFiles(t testing.TB, key crypto.Signer) (certFile, keyFile string, der []byte) {
	t.Helper()
	if key == nil {
		key = testKey()
	}
	c := testcert.WriteFor(t, key)
	return c.CertFile, c.KeyFile, c.DER
}

// newServer returns a Server with a fresh certificate, closed at cleanup.
// cfg's CertFile and KeyFile are filled in when empty.
func newServer(t testing.TB, cfg Config) (*Server, []byte) {
	t.Helper()
	var der []byte
	if cfg.CertFile == "" {
		cfg.CertFile, cfg.KeyFile, der = certFiles(t, nil)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, der
}

// testServer is a loopback listener that does what the real listener will:
// read the ClientHello with clienthello.Read, then Handshake, then hand the
// Conn to handle. Cleanup closes the listener and live conns and waits for
// every goroutine.
type testServer struct {
	srv       *Server
	ln        net.Listener
	handle    func(*Conn)
	hsTimeout time.Duration
	errs      chan error // handshake failures, dropped when full

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[*Conn]bool
}

func startServer(t testing.TB, srv *Server, handle func(*Conn)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{
		srv: srv, ln: ln, handle: handle, hsTimeout: 20 * time.Second,
		errs: make(chan error, 128), conns: make(map[*Conn]bool),
	}
	ts.wg.Add(1)
	go ts.acceptLoop()
	t.Cleanup(func() {
		ln.Close()
		ts.mu.Lock()
		for c := range ts.conns {
			c.Close()
		}
		ts.mu.Unlock()
		ts.wg.Wait()
	})
	return ts
}

func (ts *testServer) addr() string { return ts.ln.Addr().String() }

func (ts *testServer) acceptLoop() {
	defer ts.wg.Done()
	for {
		raw, err := ts.ln.Accept()
		if err != nil {
			return
		}
		ts.wg.Add(1)
		go ts.serveConn(raw)
	}
}

func (ts *testServer) serveConn(raw net.Conn) {
	defer ts.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), ts.hsTimeout)
	defer cancel()
	_ = raw.SetReadDeadline(time.Now().Add(ts.hsTimeout))
	_, prefix, err := clienthello.Read(raw, 0)
	if err != nil {
		raw.Close()
		ts.report(err)
		return
	}
	c, err := ts.srv.Handshake(ctx, raw, prefix)
	if err != nil {
		ts.report(err)
		return
	}
	ts.mu.Lock()
	ts.conns[c] = true
	ts.mu.Unlock()
	ts.handle(c)
	c.Close()
	ts.mu.Lock()
	delete(ts.conns, c)
	ts.mu.Unlock()
}

func (ts *testServer) report(err error) {
	select {
	case ts.errs <- err:
	default:
	}
}

// echo answers every record with one record of the same bytes, reading and
// writing in two goroutines like the real server's reader and writer loops.
func echo(c *Conn) {
	msgs := make(chan []byte, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var err error
		for m := range msgs {
			if err == nil {
				_, err = c.Write(m)
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		msgs <- bytes.Clone(buf[:n])
	}
	close(msgs)
	<-done
}

// clientConfig is a zcrypto TLS 1.2 client offering exactly suites, like the
// 2017 Android client (which pins the certificate: tests compare it).
func clientConfig(suites ...uint16) *ztls.Config {
	if len(suites) == 0 {
		suites = []uint16{suiteDHE}
	}
	return &ztls.Config{
		ServerName:         "dtcall.test",
		InsecureSkipVerify: true,
		CipherSuites:       suites,
		ForceSuites:        true,
		MinVersion:         ztls.VersionTLS12,
		MaxVersion:         ztls.VersionTLS12,
	}
}

// dial connects a zcrypto client to addr and completes the handshake. The
// connection gets a 20 s deadline and is closed at cleanup.
func dial(t testing.TB, addr string, suites ...uint16) *ztls.Conn {
	t.Helper()
	c, err := dialErr(addr, nil, suites...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialErr is dial without a testing.TB, for goroutines; wrap, if non-nil,
// wraps the raw connection.
func dialErr(addr string, wrap func(net.Conn) net.Conn, suites ...uint16) (*ztls.Conn, error) {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if err := raw.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		raw.Close()
		return nil, err
	}
	if wrap != nil {
		raw = wrap(raw)
	}
	c := ztls.Client(raw, clientConfig(suites...))
	if err := c.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// tapConn records every byte read from the wrapped conn.
type tapConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.buf.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// appDataRecords returns the lengths of the application_data records (type
// 23) in the bytes read so far.
func (c *tapConn) appDataRecords() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lens []int
	b := c.buf.Bytes()
	for len(b) >= 5 {
		n := int(b[3])<<8 | int(b[4])
		if b[0] == 23 {
			lens = append(lens, n)
		}
		if len(b) < 5+n {
			break
		}
		b = b[5+n:]
	}
	return lens
}

// tcpPair returns both ends of a loopback TCP connection, closed at cleanup.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		client.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// captureHello returns the ClientHello bytes of a zcrypto DHE-only client.
func captureHello(t testing.TB) []byte {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ztls.Client(client, clientConfig()).Handshake()
		client.Close()
	}()
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, raw, err := clienthello.Read(server, 0)
	server.Close()
	<-done
	if err != nil {
		t.Fatalf("capture ClientHello: %v", err)
	}
	return raw
}
