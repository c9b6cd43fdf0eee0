package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dtcall/dtcall/accounts"
	"github.com/dtcall/dtcall/client"
)

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a dtoperator started by startServer.
type running struct {
	s                          *server
	logs                       *syncBuffer
	pin                        string
	commandPort, mediaPort, qp int
}

// startServer runs serve with cfg on 127.0.0.1 (ports picked by the
// system), with a users file of alice/pw-alice and bob/pw-bob in cheap
// hashes, until the end of the test.
func startServer(t *testing.T, cfg Config) *running {
	t.Helper()
	dir := t.TempDir()
	var users strings.Builder
	for _, name := range []string{"alice", "bob"} {
		h, err := accounts.NewHash("pw-"+name, accounts.Params{LogN: 4, R: 8, P: 1})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&users, "%s %s\n", name, h)
	}
	cfg.Listen, cfg.Data, cfg.Drain = "127.0.0.1", dir, time.Second
	cfg.Users = writeFile(t, dir, "users", users.String())
	logs := &syncBuffer{}
	r := &running{logs: logs, pin: filepath.Join(dir, certName)}
	r.s = &server{log: slog.New(slog.NewTextHandler(logs, nil)), level: new(slog.LevelVar), cfg: cfg}
	sigs := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- serve(sigs, r.s) }()
	t.Cleanup(func() {
		sigs <- syscall.SIGTERM
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	ready := regexp.MustCompile(`msg="dtoperator ready".* command=127\.0\.0\.1:(\d+) media=127\.0\.0\.1:(\d+) quic=127\.0\.0\.1:(\d+)`)
	for range 200 {
		if m := ready.FindStringSubmatch(logs.String()); m != nil {
			r.commandPort, _ = strconv.Atoi(m[1])
			r.mediaPort, _ = strconv.Atoi(m[2])
			r.qp, _ = strconv.Atoi(m[3])
			return r
		}
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v\n%s", err, logs)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("no ready line in 10 s:\n%s", logs)
	return nil
}

// dial connects from the address from over tr.
func (r *running) dial(ctx context.Context, from string, tr client.Transport) (*client.Client, error) {
	return client.Dial(ctx, client.Options{
		Server: "127.0.0.1", CommandPort: r.commandPort, MediaPort: r.mediaPort, QUICPort: r.qp,
		Transport: tr, PinFile: r.pin, LocalAddr: from, Timeout: 5 * time.Second, Keepalive: -1,
		DialRetries: -1, // the server's refusal is what is tested, not the client's persistence
	})
}

// login dials from from over tr and logs in; it returns how it went,
// whether the dial got through, and how long the step that failed or the
// login took.
func (r *running) login(from string, tr client.Transport, user, password string) (err error, took time.Duration, dialed bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	c, err := r.dial(ctx, from, tr)
	if err != nil {
		return err, time.Since(start), false
	}
	defer c.Close()
	start = time.Now()
	err = c.Login(ctx, user, password)
	return err, time.Since(start), true
}

// TestAutobanEndToEnd is the "done when": from 127.0.0.2,
// autoban_attempts wrong logins, then even a correct login from there is
// refused within 1 s (the login command, answered by the core without a
// check; or the dial, once the fronts consult the autoban), over TCP and
// QUIC, while 127.0.0.3 logs in normally; the ban lifts after
// autoban_time.
func TestAutobanEndToEnd(t *testing.T) {
	t.Parallel()
	const attempts, banTime = 3, 2 * time.Second
	r := startServer(t, Config{AutobanAttempts: attempts, AutobanWindow: time.Minute, AutobanTime: banTime})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := r.dial(ctx, "127.0.0.2", client.TCP)
	if err != nil {
		t.Fatal(err)
	}
	for i := range attempts {
		if err := c.Login(ctx, "alice", "wr0ng-secret"); !errors.Is(err, client.ErrRefused) {
			t.Fatalf("wrong login %d: %v, want refused", i+1, err)
		}
	}
	c.Close()
	banned := time.Now()

	dialed := 0
	for _, tr := range []client.Transport{client.TCP, client.QUIC} {
		err, took, ok := r.login("127.0.0.2", tr, "alice", "pw-alice")
		if err == nil || took > time.Second {
			t.Errorf("%v: right password from the banned 127.0.0.2: %v after %v, want refused within 1 s", tr, err, took)
		}
		if ok {
			dialed++
		}
		if err, _, _ := r.login("127.0.0.3", tr, "bob", "pw-bob"); err != nil {
			t.Errorf("%v: bob from 127.0.0.3 during the ban: %v", tr, err)
		}
	}
	if st := r.s.bans.Stats(); st.Active != 1 || st.Bans != 1 {
		t.Errorf("autoban stats during the ban: %+v, want 1 active", st)
	}
	// Without the fronts' gate the core refuses each login; with it, no
	// connection gets as far as a login.
	if n := r.s.calls.Stats().Logins["banned"]; n != int64(dialed) {
		t.Errorf("logins banned: %d, want %d (one per connection that got through)", n, dialed)
	}

	time.Sleep(time.Until(banned.Add(banTime)))
	for _, tr := range []client.Transport{client.TCP, client.QUIC} {
		if err, _, _ := r.login("127.0.0.2", tr, "alice", "pw-alice"); err != nil {
			t.Errorf("%v: alice from 127.0.0.2 after the ban: %v", tr, err)
		}
	}
	if st := r.s.bans.Stats(); st.Active != 0 {
		t.Errorf("autoban stats after the ban: %+v, want none active", st)
	}

	logs := r.logs.String()
	for _, want := range []struct {
		line string
		n    int
	}{
		{`msg="login failed" peer=127.0.0.2 `, attempts},
		{`msg="source banned" peer=127.0.0.2 `, 1},
		{`msg="login refused: source banned" peer=127.0.0.2 `, dialed},
	} {
		if n := strings.Count(logs, want.line); n != want.n {
			t.Errorf("%d log lines with %q, want %d", n, want.line, want.n)
		}
	}
	if strings.Contains(logs, "wr0ng-secret") || strings.Contains(logs, "pw-alice") {
		t.Error("a password reached the log")
	}
}

// TestAutobanOff: with autoban_attempts = 0, failures never ban.
func TestAutobanOff(t *testing.T) {
	t.Parallel()
	r := startServer(t, Config{AutobanAttempts: 0})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := r.dial(ctx, "127.0.0.4", client.TCP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 15 {
		if err := c.Login(ctx, "alice", "wrong"); !errors.Is(err, client.ErrRefused) {
			t.Fatalf("wrong login: %v", err)
		}
	}
	if err := c.Login(ctx, "alice", "pw-alice"); err != nil {
		t.Errorf("right login after 15 wrong ones, autoban off: %v", err)
	}
}

func TestLoadConfigAutoban(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tomlFile := writeFile(t, dir, "a.toml", `autoban_exempt = ["10.0.0.0/8", "::ffff:192.0.2.1"]`+"\nautoban_attempts = 0\n")
	tests := []struct {
		args    []string
		want    func(c Config) bool
		wantErr string
	}{
		{nil, func(c Config) bool {
			return c.AutobanAttempts == 10 && c.AutobanWindow == 2*time.Minute && c.AutobanTime == 5*time.Minute &&
				c.AutobanExempt == "" && c.LoginQueue == 256 && c.LoginQueuePerSource == 4 && c.LoginWait == 10*time.Second
		}, ""},
		{[]string{"--autoban_exempt", "10.0.0.0/8,2001:db8::/48  192.0.2.1"}, func(c Config) bool {
			return c.AutobanExempt == "10.0.0.0/8, 2001:db8::/48, 192.0.2.1/32" &&
				len(exemptPrefixes(c.AutobanExempt)) == 3
		}, ""},
		{[]string{"-c", tomlFile}, func(c Config) bool {
			return c.AutobanExempt == "10.0.0.0/8, 192.0.2.1/32" && c.AutobanAttempts == 0
		}, ""},
		{[]string{"--autoban_attempts", "3", "--autoban_time", "90", "--login_wait", "2s"}, func(c Config) bool {
			return c.AutobanAttempts == 3 && c.AutobanTime == 90*time.Second && c.LoginWait == 2*time.Second
		}, ""},
		{[]string{"--autoban_exempt", "10.0.0.1/8"}, nil, `"10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`},
		{[]string{"--autoban_exempt", "10.0.0.0/8, office"}, nil, `"office" is not a CIDR prefix or an IP address`},
		{[]string{"--autoban_attempts", "-1"}, nil, `"-1" is not a whole number 0-1048576`},
		{[]string{"--login_queue", "0"}, nil, `"0" is not a whole number 1-1048576`},
		{[]string{"--autoban_window", "0s"}, nil, "not a positive duration"},
	}
	for _, tt := range tests {
		c, _, err := loadConfig(tt.args, testEnv(dir))
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want one with %q", tt.args, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case !tt.want(c):
			t.Errorf("%q: config %+v", tt.args, c)
		}
	}
}
