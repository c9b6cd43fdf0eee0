//go:build cgo && !nodhe

package dhe

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	ztls "github.com/zmap/zcrypto/tls"
)

func TestHandshakeDHEOnlyClient(t *testing.T) {
	srv, der := newServer(t, Config{})
	states := make(chan [2]string, 1)
	ts := startServer(t, srv, func(c *Conn) {
		v, ciph := c.ConnectionState()
		states <- [2]string{v, ciph}
		echo(c)
	})
	c := dial(t, ts.addr())
	st := c.ConnectionState()
	if st.CipherSuite != suiteDHE || st.Version != ztls.VersionTLS12 {
		t.Fatalf("negotiated suite %#04x version %#04x, want 0x009f TLS 1.2", st.CipherSuite, st.Version)
	}
	if len(st.PeerCertificates) == 0 || !bytes.Equal(st.PeerCertificates[0].Raw, der) {
		t.Fatal("server presented another certificate")
	}
	if got := <-states; got != [2]string{"TLSv1.2", "DHE-RSA-AES256-GCM-SHA384"} {
		t.Fatalf("server ConnectionState = %q", got)
	}
	roundTrip(t, c, []byte("1700000000|login|righthand|unlucky"))
}

// roundTrip writes msg as one record and expects it echoed as one record.
func roundTrip(t testing.TB, c net.Conn, msg []byte) {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg)+100)
	n, err := c.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], msg) {
		t.Fatalf("echo = %q, %v; want %q", buf[:n], err, msg)
	}
}

func TestRecordBoundaries(t *testing.T) {
	srv, _ := newServer(t, Config{})
	got := make(chan []byte, 8)
	ts := startServer(t, srv, func(c *Conn) {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- bytes.Clone(buf[:n])
			if string(buf[:n]) == "reply" {
				// Two replies back to back must stay two records.
				_, _ = c.Write([]byte("1700000000|resp|login|42"))
				_, _ = c.Write([]byte("1700000000|ring|incoming|zapper"))
			}
		}
	})
	var tap *tapConn
	c, err := dialErr(ts.addr(), func(raw net.Conn) net.Conn {
		tap = &tapConn{Conn: raw}
		return tap
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	sent := [][]byte{[]byte("1700000000|call|zapper|42"), []byte("D"), bytes.Repeat([]byte("x"), 1000), []byte("reply")}
	for _, m := range sent {
		if _, err := c.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range sent {
		if m := <-got; !bytes.Equal(m, want) {
			t.Fatalf("server Read = %q, want %q", m, want)
		}
	}
	buf := make([]byte, 1024)
	for _, want := range []string{"1700000000|resp|login|42", "1700000000|ring|incoming|zapper"} {
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("client Read = %q, %v; want %q", buf[:n], err, want)
		}
	}
	// AES-256-GCM in TLS 1.2 adds an 8-byte explicit nonce and a 16-byte tag.
	lens := tap.appDataRecords()
	if len(lens) != 2 || lens[0] != 24+24 || lens[1] != 31+24 {
		t.Fatalf("server sent application records of %v bytes, want [48 55]", lens)
	}
	c.Close()
	if _, ok := <-got; ok {
		t.Fatal("server read more records than sent")
	}
}

func TestReadShortBufferAndLargeWrite(t *testing.T) {
	srv, _ := newServer(t, Config{})
	big := bytes.Repeat([]byte("0123456789abcdef"), 2500) // 40000 bytes: 3 records
	errc := make(chan error, 1)
	ts := startServer(t, srv, func(c *Conn) {
		errc <- func() error {
			small := make([]byte, 10)
			n, err := c.Read(small)
			if err != nil || n != 10 {
				return errors.Join(errors.New("first short read"), err)
			}
			rest := make([]byte, 1000)
			m, err := c.Read(rest)
			if err != nil || string(small)+string(rest[:m]) != strings.Repeat("m", 100) {
				return errors.Join(errors.New("rest of the record"), err)
			}
			_, err = c.Write(big)
			return err
		}()
	})
	var tap *tapConn
	c, err := dialErr(ts.addr(), func(raw net.Conn) net.Conn { tap = &tapConn{Conn: raw}; return tap })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(bytes.Repeat([]byte("m"), 100)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.LimitReader(c, int64(len(big))))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("large write arrived as %d bytes, %v", len(got), err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if lens := tap.appDataRecords(); len(lens) != 3 || lens[0] != 16384+24 || lens[2] != 40000-2*16384+24 {
		t.Fatalf("record sizes %v, want 16384, 16384, 7232 plus 24 each", lens)
	}
}

func TestEOF(t *testing.T) {
	srv, _ := newServer(t, Config{})
	errc := make(chan error, 4)
	ts := startServer(t, srv, func(c *Conn) {
		buf := make([]byte, 64)
		for range 10 {
			if _, err := c.Read(buf); err != nil {
				errc <- err
				return
			}
		}
	})
	t.Run("close_notify", func(t *testing.T) {
		c := dial(t, ts.addr())
		roundTripOneWay(t, c)
		c.Close()
		if err := <-errc; err != io.EOF {
			t.Fatalf("server Read after close_notify = %v, want io.EOF", err)
		}
	})
	t.Run("tcp-close", func(t *testing.T) {
		var raw net.Conn
		c, err := dialErr(ts.addr(), func(r net.Conn) net.Conn { raw = r; return r })
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		roundTripOneWay(t, c)
		raw.Close() // no close_notify, at a record boundary
		if err := <-errc; !errors.Is(err, io.EOF) {
			t.Fatalf("server Read after TCP close = %v, want io.EOF", err)
		}
	})
}

func roundTripOneWay(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := c.Write([]byte("D")); err != nil {
		t.Fatal(err)
	}
}

func TestServerCloseSendsCloseNotify(t *testing.T) {
	srv, _ := newServer(t, Config{})
	ts := startServer(t, srv, func(c *Conn) {
		buf := make([]byte, 64)
		if _, err := c.Read(buf); err != nil {
			return
		}
		c.Close()
		if err := c.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write after Close = %v, want net.ErrClosed", err)
		}
		if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read after Close = %v, want net.ErrClosed", err)
		}
	})
	c := dial(t, ts.addr())
	roundTripOneWay(t, c)
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err != io.EOF {
		t.Fatalf("client Read after server Close = %d, %v; want io.EOF", n, err)
	}
}

func TestNoSharedCipher(t *testing.T) {
	srv, _ := newServer(t, Config{})
	ts := startServer(t, srv, echo)
	_, err := dialErr(ts.addr(), nil, 0xc02f) // ECDHE-RSA-AES128-GCM-SHA256 only
	if err == nil {
		t.Fatal("handshake without a DHE suite succeeded")
	}
	select {
	case err := <-ts.errs:
		if !strings.Contains(err.Error(), "no shared cipher") {
			t.Fatalf("server error = %v, want OpenSSL's \"no shared cipher\"", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no server error")
	}
}

// TestOpenSSLClient drives the openssl command-line client, a second,
// independent DHE implementation.
func TestOpenSSLClient(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("the openssl binary is needed for this test (%v): install it (Debian/Ubuntu: apt-get install openssl)", err)
	}
	srv, _ := newServer(t, Config{DHParamsFile: "testdata/ffdhe3072.pem"})
	ts := startServer(t, srv, func(c *Conn) {
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err == nil {
			_, _ = c.Write(append([]byte("echo:"), buf[:n]...))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "s_client", "-tls1_2", "-cipher", "DHE-RSA-AES256-GCM-SHA384",
		"-connect", ts.addr(), "-servername", "dtcall.test", "-ign_eof")
	cmd.Stdin = strings.NewReader("ping\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl s_client: %v\n%s", err, out)
	}
	for _, want := range []string{"Cipher is DHE-RSA-AES256-GCM-SHA384", "Protocol  : TLSv1.2", "Server Temp Key: DH, 3072 bits", "echo:ping"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("s_client output lacks %q:\n%s", want, out)
		}
	}
}
