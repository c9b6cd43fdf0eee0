package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dtcall/dtcall/accounts"
	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/internal/testserver"
)

// dtload runs dtload with args and returns its exit code, stdout and
// stderr.
func dtload(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = mainArgs(context.Background(), args, &o, &e, false)
	return code, o.String(), e.String()
}

// target is the flags that reach srv.
func target(srv *testserver.Server) []string {
	return []string{"--server", "127.0.0.1", "--command", strconv.Itoa(srv.CommandPort),
		"--media", strconv.Itoa(srv.MediaPort), "--quic", strconv.Itoa(srv.QUICPort)}
}

// closedPort is a TCP port on 127.0.0.1 that nothing listens on (it was
// free a moment ago).
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// writeAccountsFile writes an accounts file of "name password" lines.
func writeAccountsFile(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "accounts")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunSetUpFails: calls that fail to set up make dtload run exit 1 and
// print how many failed by reason and the first error, with its cause; the
// JSON report says the same.
func TestRunSetUpFails(t *testing.T) {
	es, acctFile := loadUsers(t, 4)
	as, err := loadAccounts(acctFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Config{Accounts: es})
	good := func(i int) string { return as[i].name + " " + as[i].password }
	for _, tc := range []struct {
		name     string
		accounts []string
		flags    []string
		reasons  string // the count by reason, as printed
		first    string // in the first error
		reason   string // the first error's
	}{
		{"wrong password", []string{good(0), as[1].name + " not-the-password", good(2), good(3)}, target(srv),
			"(login 1)", "call 1, login, at ", "login"},
		{"unknown user", []string{good(0), good(1), "nobody-here pw", good(3)}, target(srv),
			"(login 1)", "call 2, login, at ", "login"},
		{"unreachable port", []string{good(0), good(1), good(2), good(3)},
			[]string{"--server", "127.0.0.1", "--command", strconv.Itoa(closedPort(t)), "--media", strconv.Itoa(srv.MediaPort)},
			"(dial 2)", "nothing listens on TCP port", "dial"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jsonFile := filepath.Join(t.TempDir(), "report.json")
			args := append([]string{"run", "--pin", srv.Cert.CertFile, "--accounts", writeAccountsFile(t, tc.accounts...),
				"--calls", "2", "--transport", "tcp", "--ramp", "0s", "--duration", "1s", "--json", jsonFile, "-q"}, tc.flags...)
			start := time.Now()
			code, stdout, stderr := dtload(t, args...)
			if code != exitFailed {
				t.Errorf("exit %d, want %d", code, exitFailed)
			}
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("took %v", took)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "dtload: ") || !strings.Contains(lines[0], " calls failed "+tc.reasons) ||
				!strings.HasPrefix(lines[1], "dtload: first error: ") || !strings.Contains(lines[1], tc.first) {
				t.Errorf("stderr, want the count %q and a first error with %q:\n%s", tc.reasons, tc.first, stderr)
			}
			if tc.reason == "login" && !strings.Contains(stderr, "login refused: wrong user name or password") {
				t.Errorf("stderr lacks the server's refusal:\n%s", stderr)
			}
			if !strings.Contains(stdout, "failed ") || !strings.Contains(stdout, tc.reasons) {
				t.Errorf("summary lacks the count by reason %q:\n%s", tc.reasons, stdout)
			}
			b, err := os.ReadFile(jsonFile)
			if err != nil {
				t.Fatal(err)
			}
			var rep Report
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			if f := rep.FirstError; f == nil || f.Reason != tc.reason || !strings.Contains(lines[len(lines)-1], f.Error) ||
				rep.CallsFailed == 0 || rep.FailReasons[tc.reason] == 0 {
				t.Errorf("JSON: failed %d %v, first error %+v; want it as on stderr", rep.CallsFailed, rep.FailReasons, rep.FirstError)
			}
		})
	}
}

// TestFindMaxNothingGood: a search where even one call fails to set up
// exits 1 with the first error.
func TestFindMaxNothingGood(t *testing.T) {
	es, _ := loadUsers(t, 2)
	srv := testserver.Start(t, testserver.Config{Accounts: es})
	accts := writeAccountsFile(t, es[0].Name+" wrong", es[1].Name+" wrong")
	code, stdout, stderr := dtload(t, append([]string{"run", "--find-max", "--start", "1", "--pause", "0s",
		"--pin", srv.Cert.CertFile, "--accounts", accts, "--ramp", "0s", "--duration", "100ms", "-q"}, target(srv)...)...)
	if code != exitFailed || !strings.Contains(stderr, "no call count met the criterion") ||
		!strings.Contains(stderr, "first error: call 1, login") || !strings.Contains(stdout, "first error: call 1, login") {
		t.Errorf("exit %d, want 1 and the first error\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestIdleFirstError: dtload idle prints the first failed login's error.
func TestIdleFirstError(t *testing.T) {
	es, _ := loadUsers(t, 2)
	srv := testserver.Start(t, testserver.Config{Accounts: es})
	accts := writeAccountsFile(t, "nobody-here pw")
	code, stdout, stderr := dtload(t, append([]string{"idle", "--pin", srv.Cert.CertFile, "--accounts", accts, "--hold", "0s"}, target(srv)...)...)
	if code != exitFailed || !strings.Contains(stdout, "failed 1 (login 1)") ||
		!strings.Contains(stderr, "dtload: 1 of 1 logins failed (login 1)\ndtload: first error: user 1, login, at ") ||
		!strings.Contains(stderr, "nobody-here over tcp: login refused") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// copyLater writes src's content to dst after d, as dtoperator writes its
// certificate: to a temporary file renamed into place.
func copyLater(t *testing.T, src, dst string, d time.Duration) <-chan struct{} {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(d)
		tmp := dst + ".tmp"
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Error(err)
			return
		}
		if err := os.Rename(tmp, dst); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { <-done })
	return done
}

// TestWaitForCertificate: a certificate file that appears while dtload
// waits (a server writing it on its first start) is used; one that never
// appears fails within --wait with a clear error.
func TestWaitForCertificate(t *testing.T) {
	es, acctFile := loadUsers(t, 2)
	srv := testserver.Start(t, testserver.Config{Accounts: es})
	t.Run("appears", func(t *testing.T) {
		pin := filepath.Join(t.TempDir(), "data", "cert.pem")
		os.Mkdir(filepath.Dir(pin), 0o700)
		copyLater(t, srv.Cert.CertFile, pin, 400*time.Millisecond)
		code, stdout, stderr := dtload(t, append([]string{"run", "--pin", pin, "--wait", "10s", "--accounts", acctFile,
			"--calls", "1", "--ramp", "0s", "--duration", "1s", "-q"}, target(srv)...)...)
		if code != 0 || !strings.Contains(stderr, "dtload: waiting up to 10s for the server's certificate "+pin) ||
			!strings.Contains(stderr, "is there and the server answers") || !strings.Contains(stdout, "ok 1, failed 0") {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
	})
	t.Run("never", func(t *testing.T) {
		dir := t.TempDir()
		pin := filepath.Join(dir, "cert.pem")
		start := time.Now()
		code, _, stderr := dtload(t, append([]string{"run", "--pin", pin, "--wait", "300ms", "--accounts", acctFile,
			"--calls", "1", "--ramp", "0s", "--duration", "1s", "-q"}, target(srv)...)...)
		took := time.Since(start)
		want := "dtload: no server certificate in " + pin + " after waiting 300ms (read pin file: open " + pin + ": no such file or directory): is dtoperator running with --data " + dir
		if code != exitFailed || !strings.Contains(stderr, want) || took < 300*time.Millisecond || took > 3*time.Second {
			t.Errorf("exit %d after %v, want 1 within about 300ms and %q:\n%s", code, took, want, stderr)
		}
	})
	t.Run("no wait", func(t *testing.T) {
		pin := filepath.Join(t.TempDir(), "cert.pem")
		code, _, stderr := dtload(t, append([]string{"idle", "--pin", pin, "--wait", "0s", "--accounts", acctFile}, target(srv)...)...)
		if code != exitFailed || strings.Contains(stderr, "waiting") || !strings.Contains(stderr, "no such file or directory") {
			t.Errorf("exit %d:\n%s", code, stderr)
		}
	})
}

// TestAwaitServer: after the certificate appears, the wait dials the
// server: a server that does not answer fails at the bound, one that
// does not match the pin fails at once.
func TestAwaitServer(t *testing.T) {
	srv := testserver.Start(t, testserver.Config{})
	other := testcert.Write(t) // another certificate: its pin does not match srv
	for _, tc := range []struct {
		name, cert string
		port       int
		want       string
		max        time.Duration
	}{
		{"not answering", srv.Cert.CertFile, closedPort(t), "is there, but the server did not answer within 1.5s: nothing listens on TCP port", 4 * time.Second},
		{"wrong pin", other.CertFile, srv.CommandPort, "does not match the pinned certificate", time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parsePin(filepath.Join(t.TempDir(), "cert.pem"))
			if err != nil {
				t.Fatal(err)
			}
			copyLater(t, tc.cert, p.file, 100*time.Millisecond)
			var msgs bytes.Buffer
			start := time.Now()
			err = awaitServer(context.Background(), p, 1500*time.Millisecond,
				&client.Options{Server: "127.0.0.1", CommandPort: tc.port}, &msgs)
			if took := time.Since(start); err == nil || !strings.Contains(err.Error(), tc.want) || took > tc.max {
				t.Errorf("after %v: %v, want an error with %q within %v\n%s", took, err, tc.want, tc.max, msgs.String())
			}
		})
	}
}

// fingerprints are the pins of a certificate in the forms dtoperator logs.
func fingerprints(t *testing.T, der []byte) (cert, spki, spkiBase64 string) {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	cs, ks := sha256.Sum256(der), sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(cs[:]), "spki:" + hex.EncodeToString(ks[:]), "sha256/" + base64.StdEncoding.EncodeToString(ks[:])
}

// TestPinForms: --pin takes the forms of dtcall --pin, for the dtcall
// client and the baseline alike.
func TestPinForms(t *testing.T) {
	c := testcert.Write(t)
	cert, spki, b64 := fingerprints(t, c.DER)
	upper := "sha256:" + strings.ToUpper(strings.TrimPrefix(cert, "sha256:"))
	for _, s := range []string{cert, upper, spki, b64, "sha256//" + strings.TrimPrefix(b64, "sha256/")} {
		if _, err := parsePin(s); err != nil {
			t.Errorf("parsePin(%q): %v", s, err)
		}
	}
	for _, s := range []string{"sha256:abc", "spki:" + strings.Repeat("zz", 32), "sha256/short", cert + "00"} {
		if _, err := parsePin(s); err == nil {
			t.Errorf("parsePin(%q) accepted", s)
		}
	}
	code, _, stderr := dtload(t, "idle", "--server", "127.0.0.1", "--pin", "spki:12", "--accounts", c.CertFile)
	if code != exitUsage || !strings.Contains(stderr, "--pin \"spki:12\": want sha256:") {
		t.Errorf("a bad pin: exit %d:\n%s", code, stderr)
	}

	t.Run("dtcall", func(t *testing.T) {
		es := []accounts.Entry{testserver.Users[0]}
		srv := testserver.Start(t, testserver.Config{Cert: c})
		accts := writeAccountsFile(t, es[0].Name+" pw-"+es[0].Name)
		for _, pin := range []string{c.CertFile, cert, spki, b64} {
			code, stdout, stderr := dtload(t, append([]string{"idle", "--pin", pin, "--accounts", accts, "--hold", "0s"}, target(srv)...)...)
			if code != 0 || !strings.Contains(stdout, "1 ok, failed 0") {
				t.Errorf("--pin %s: exit %d\n%s%s", pin, code, stdout, stderr)
			}
		}
	})
	t.Run("baseline", func(t *testing.T) {
		bc := testcert.Write(t) // the forwarder's: another certificate, the same key as c
		kp, err := tls.LoadX509KeyPair(bc.CertFile, bc.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		leafCert, leafSPKI, leafB64 := fingerprints(t, bc.DER)
		for _, pin := range []string{bc.CertFile, leafCert, leafSPKI, leafB64, cert} {
			p, err := parsePin(pin)
			if err == nil {
				err = p.load()
			}
			if err != nil {
				t.Fatal(err)
			}
			f, err := startForwarder("127.0.0.1:0", "", kp) // a fresh one: it pairs connections in order
			if err != nil {
				t.Fatal(err)
			}
			d := &baseDialer{host: "127.0.0.1", tcpPort: f.tcpLn.Addr().(*net.TCPAddr).Port, pin: p}
			e, err := d.dial(context.Background(), client.TCP, 1)
			if e != nil {
				e.(*connEnd).Close()
			}
			f.Close()
			switch {
			case pin == cert && !errors.As(err, new(*client.PinError)):
				t.Errorf("another certificate's pin: %v", err)
			case pin != cert && err != nil:
				t.Errorf("--pin %s: %v", pin, err)
			}
		}
	})
}
