package clienthello

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

func TestReplayConnReadsPrefixFirst(t *testing.T) {
	c := NewReplayConn(newPieceConn([]byte("world"), 0), []byte("hello "))
	var got []byte
	buf := make([]byte, 4)
	for range 10 {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != "hello world" {
		t.Fatalf("read %q", got)
	}
}

// TestReplayConnDrained: Drained turns true exactly when the last replayed
// byte has been read, and at once for an empty prefix.
func TestReplayConnDrained(t *testing.T) {
	c := NewReplayConn(newPieceConn([]byte("world"), 0), []byte("hello "))
	buf := make([]byte, 4)
	for i, want := range []bool{false, true} { // "hell", then "o "
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		if got := c.Drained(); got != want {
			t.Fatalf("after read %d: Drained %v, want %v", i+1, got, want)
		}
	}
	if !NewReplayConn(newPieceConn(nil, 0), nil).Drained() {
		t.Fatal("a ReplayConn with nothing to replay is not Drained")
	}
}

// TestReplayToCryptoTLS routes a real TLS 1.3 client the way the listener
// will: sniff the hello on a loopback socket, then hand crypto/tls a
// ReplayConn, and exchange data.
func TestReplayToCryptoTLS(t *testing.T) {
	cert := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		raw, err := ln.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		defer raw.Close()
		_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
		h, prefix, err := Read(raw, 0)
		if err != nil || h.NeedsDHE(goSuites()) {
			t.Errorf("Read: %v (NeedsDHE %v)", err, h != nil && h.NeedsDHE(goSuites()))
			return
		}
		c := tls.Server(NewReplayConn(raw, prefix), &tls.Config{Certificates: []tls.Certificate{cert}})
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			t.Error(err)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 64)
	n, err := c.Read(got)
	if err != nil || !bytes.Equal(got[:n], []byte("ping")) {
		t.Fatalf("echo = %q, %v", got[:n], err)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "dtcall.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"dtcall.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
