package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dtcall/dtcall/internal/testserver"
)

// TestIdle logs users in over each transport, checks they are online
// while held, and that the report counts them and the server's memory.
func TestIdle(t *testing.T) {
	const users = 6
	es, acctFile := loadUsers(t, users)
	for _, tr := range []string{"tcp", "quic", "datagram"} {
		t.Run(tr, func(t *testing.T) {
			srv := testserver.Start(t, testserver.Config{Accounts: es})
			var peak int64
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() { // the most sessions seen while dtload holds them
				defer close(done)
				for {
					peak = max(peak, srv.Core.Stats().Sessions)
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}()
			var out bytes.Buffer
			code := mainArgs(context.Background(), []string{"idle",
				"--server", "127.0.0.1", "--command", strconv.Itoa(srv.CommandPort), "--media", strconv.Itoa(srv.MediaPort),
				"--quic", strconv.Itoa(srv.QUICPort), "--pin", srv.Cert.CertFile, "--accounts", acctFile,
				"--transport", tr, "--parallel", "4", "--hold", "300ms", "--server-pid", strconv.Itoa(os.Getpid()),
			}, &out, &out, false)
			close(stop)
			<-done
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out.String())
			}
			for _, want := range []string{"logins     6 ok, failed 0,", "KiB per user", "with 6 idle users"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("report lacks %q:\n%s", want, out.String())
				}
			}
			if peak != users {
				t.Errorf("at most %d sessions online while held, want %d", peak, users)
			}
		})
	}
}

// TestIdleFailedLogins exits non-zero and says why logins failed.
func TestIdleFailedLogins(t *testing.T) {
	es, _ := loadUsers(t, 2)
	srv := testserver.Start(t, testserver.Config{Accounts: es})
	wrong := filepath.Join(t.TempDir(), "wrong.accounts")
	os.WriteFile(wrong, []byte(es[0].Name+" not-the-password\n"), 0o600)
	var out bytes.Buffer
	code := mainArgs(context.Background(), []string{"idle",
		"--server", "127.0.0.1", "--command", strconv.Itoa(srv.CommandPort), "--media", strconv.Itoa(srv.MediaPort),
		"--pin", srv.Cert.CertFile, "--accounts", wrong, "--hold", "0s",
	}, &out, &out, false)
	if code == 0 || !strings.Contains(out.String(), "failed 1 (login 1)") {
		t.Fatalf("exit %d, want a failure with the reason:\n%s", code, out.String())
	}
}
