// Package interop checks the real dtoperator binary from outside, with a
// Java client (java/LegacyClient.java) that behaves exactly like the
// deployed Android and Java clients: their TLS set-ups, certificate pinning,
// one write per command and one read per reply, 32-byte media frames.
//
// The test builds the binary, makes its users file with "dtoperator user
// add", writes a certificate and an old-format dtoperator.conf, runs the
// server as a separate process on loopback and runs the Java client against
// it for several caller→callee TLS profile pairs. Against the same server
// it then runs the interop matrix (matrix_test.go): every scenario for every
// caller→callee pair of Go (TCP, QUIC stream, QUIC datagram) and Java
// (android2017, java-default) clients, printed as a table. It needs a JDK 17
// (javac and java on PATH) and the DHE engine (cgo with OpenSSL 3).
//
// Other tests run cmd/dtcall processes against dtoperator processes of
// their own (dtcall_test.go: 40-s file calls, exit codes), kill a party or
// the server mid-call (liveness_test.go) and hold a 2-minute call between
// the Java client and a QUIC datagram client (longcall_test.go), and join
// two dtoperator processes through a real nats-server and call across
// them, legacy media on the other node than the commands included, then
// SIGKILL one while a call local to the other goes on (cluster_test.go). They run in parallel with each
// other, after the tests above.
package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(removingBuilds{m}) }

// removingBuilds runs the tests, then removes the binaries they shared
// (sharedBuilds).
type removingBuilds struct{ m *testing.M }

func (r removingBuilds) Run() int {
	defer removeSharedBuilds()
	return r.m.Run()
}

// pairs are the caller→callee TLS profiles the Java client runs every
// scenario with. java-tls12 (the Java client on a Java 8 runtime: ECDHE
// over TLS 1.2) is the path java-default no longer takes on Java 17.
var pairs = []pair{
	{"android2017", "java-default"},
	{"java-default", "android2017"},
	{"android2017", "android2017"},
	{"java-tls12", "android2017"},
}

const (
	suiteDHE      = "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"
	pinMismatch   = "does not match the pinned certificate"
	buildTimeout  = 5 * time.Minute
	serverTimeout = 8 * time.Minute // the server's whole life
	readyTimeout  = 30 * time.Second
	clientTimeout = 3 * time.Minute  // one run of the Java client
	stopTimeout   = 20 * time.Second // the server drains calls for at most 10 s
)

type pair struct{ caller, callee string }

func (p pair) String() string { return p.caller + "→" + p.callee }

// account is a user of the test server.
type account struct{ name, password string }

func TestJavaLegacyClients(t *testing.T) {
	jdk := needJDK(t)
	dir := t.TempDir()
	classes := compileClient(t, jdk, dir)
	bin := buildServer(t, dir)
	accts := []account{{"alice", rand.Text()}, {"bob", rand.Text()}, {"carol", rand.Text()}}
	matrixAccts := matrixAccounts()
	wrong := "wrong-" + rand.Text()
	files := serverFiles{users: writeUsers(t, bin, dir, append(accts, matrixAccts...)), logs: filepath.Join(dir, "logs")}
	files.cert, files.key = writeCert(t, dir, "server")
	otherCert, _ := writeCert(t, dir, "other")
	srv := startServer(t, bin, dir, files)
	client := javaClient{java: jdk.java, classes: classes, srv: srv, accts: accts, wrong: wrong}

	runs := make([]clientRun, len(pairs))
	for i, p := range pairs {
		t.Run(strings.ReplaceAll(p.String(), "→", "_to_"), func(t *testing.T) {
			runs[i] = client.run(t, files.cert, p, "")
			runs[i].check(t, p, srv)
		})
	}
	t.Log("\n" + table(runs))

	t.Run("matrix", func(t *testing.T) {
		runMatrix(t, &matrixEnv{srv: srv, certFile: files.cert, java: jdk.java, classes: classes, accts: matrixAccts,
			goTLS: map[goTransport]string{}, javaTLS: map[string]string{}})
	})

	t.Run("pin_mismatch_refused", func(t *testing.T) {
		for _, profile := range []string{"android2017", "java-default", "java-tls12"} {
			r := client.run(t, otherCert, pair{profile, profile}, "login")
			if r.exit == 0 || len(r.passed()) > 0 || !strings.Contains(r.stdout, pinMismatch) {
				t.Errorf("%s with a different pinned certificate: exit %d, want a refused handshake (%q)\n%s%s",
					profile, r.exit, pinMismatch, r.stdout, r.stderr)
			}
		}
	})

	srv.stop(t)
	secrets := []string{wrong}
	var users []string
	for _, a := range append(accts, matrixAccts...) {
		secrets = append(secrets, a.password)
		users = append(users, a.name)
	}
	checkLogs(t, files.logs, srv.console.String(), users, secrets)
}

// jdk is where javac and java are.
type jdk struct{ javac, java string }

// needJDK finds javac and java, or fails the test (never skips it).
func needJDK(t *testing.T) jdk {
	t.Helper()
	var j jdk
	for _, tool := range []struct {
		name string
		path *string
	}{{"javac", &j.javac}, {"java", &j.java}} {
		p, err := exec.LookPath(tool.name)
		if err != nil {
			t.Fatalf("%s not found on PATH: the interop test needs a JDK 17; install openjdk-17-jdk-headless "+
				"(Debian: apt-get install openjdk-17-jdk-headless)", tool.name)
		}
		*tool.path = p
	}
	return j
}

// compileClient compiles LegacyClient.java into dir/classes.
func compileClient(t *testing.T, j jdk, dir string) string {
	t.Helper()
	classes := filepath.Join(dir, "classes")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, j.javac, "--release", "17", "-Xlint:all",
		"-d", classes, filepath.Join("java", "LegacyClient.java")).CombinedOutput()
	if err != nil {
		t.Fatalf("javac LegacyClient.java: %v\n%s", err, out)
	}
	if len(out) > 0 { // warnings: clean on JDK 17; newer JDKs may add lints
		t.Logf("javac LegacyClient.java:\n%s", out)
	}
	return classes
}

// buildServer builds cmd/dtoperator into dir.
func buildServer(t *testing.T, dir string) string { return buildCmd(t, dir, "dtoperator") }

// buildCmd builds the module's command cmd/<name> (dtoperator, dtcall)
// into dir/<name> and returns its path.
func buildCmd(t *testing.T, dir, name string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	noteSources(t, root)
	bin, err := goBuild(root, dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// moduleRoot is the folder of the module's go.mod.
func moduleRoot() (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("go not found on PATH: needed to build the module's commands")
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	gomod, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(gomod)) == 0 || string(bytes.TrimSpace(gomod)) == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: %q, %v: run the test inside the module", gomod, err)
	}
	return filepath.Dir(string(bytes.TrimSpace(gomod))), nil
}

// goBuild builds cmd/<name> of the module at root into dir/<name>.
func goBuild(root, dir, name string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go not found on PATH: needed to build cmd/%s", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	bin := filepath.Join(dir, name)
	build := exec.CommandContext(ctx, goTool, "build", "-o", bin, "github.com/dtcall/dtcall/cmd/"+name)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build cmd/%s: %v\n%s", name, err, out)
	}
	return bin, nil
}

// noteSources stats every file of the module so that go test's result
// cache reruns this test when the server's or the client's sources change:
// the test binary imports neither, and the cache only knows the files the
// test binary itself opened or stat'ed (by size and mtime).
func noteSources(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && path != root && strings.HasPrefix(d.Name(), "."):
			return filepath.SkipDir // .git and the like
		case !d.IsDir():
			_, err = os.Stat(path)
		}
		return err
	})
	if err != nil {
		t.Fatalf("list the module's files: %v", err)
	}
}

// writeUsers makes the users file with the binary itself, each password
// on stdin (not a terminal).
func writeUsers(t *testing.T, bin, dir string, accts []account) string {
	t.Helper()
	users := filepath.Join(dir, "users")
	for _, a := range accts {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, bin, "user", "add", a.name, "--users", users)
		cmd.Stdin = strings.NewReader(a.password + "\n")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("dtoperator user add %s: %v\n%s", a.name, err, out)
		}
		if bytes.Contains(out, []byte(a.password)) {
			t.Errorf("dtoperator user add %s printed the password: %s", a.name, out)
		}
	}
	return users
}

// writeCert writes an RSA-2048 self-signed certificate for 127.0.0.1 and
// its key as dir/<name>-cert.pem and dir/<name>-key.pem.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "dtoperator interop " + name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+"-cert.pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", pkcs8)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serverFiles are the paths the server's config names, and what else its
// config holds.
type serverFiles struct {
	cert, key, users, logs string
	// modernCert and modernKey, if set, are modern_public and
	// modern_private: the certificate QUIC and crypto/tls serve.
	modernCert, modernKey string
	// metrics turns the admin endpoint on, on a free loopback port
	// (server.metricsAddr).
	metrics bool
	// extra are more "key = value" lines.
	extra []string
	// started, if set, is called once the process started, before it is
	// ready (to watch it come up).
	started func(*server)
	// ports, if set, are the command, media and metrics ports to use
	// instead of free ones (a second server on the first one's ports).
	ports []int
	// conf, if set, is the config file's path instead of dir/dtoperator.conf.
	conf string
}

// server is a running dtoperator process.
type server struct {
	cmd       *exec.Cmd
	console   *console
	cancel    context.CancelFunc
	exited    chan struct{} // closed once Wait returned
	waitErr   error         // Wait's result, set before exited is closed
	cmdPort   int
	mediaPort int
	conf      string // the config file
	// metricsAddr is the admin endpoint's host:port ("" without
	// serverFiles.metrics).
	metricsAddr string
}

// console collects the server's console output and notices its ready line.
// It is safe for concurrent use.
type console struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	readyLine string
	ready     chan struct{} // closed at the ready line
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if c.readyLine == "" {
		for line := range strings.Lines(c.buf.String()) {
			if strings.HasSuffix(line, "\n") && strings.Contains(line, "dtoperator ready") {
				c.readyLine = line
				close(c.ready)
				break
			}
		}
	}
	return len(p), nil
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// startServer starts the server on free loopback ports and waits for it to
// be ready. It tries new ports if another process took the chosen ones.
func startServer(t *testing.T, bin, dir string, files serverFiles) *server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := tryStart(t, bin, dir, files)
		if err == nil {
			return s
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("attempt %d: %v; trying other ports", attempt, err)
	}
}

func tryStart(t *testing.T, bin, dir string, files serverFiles) (*server, error) {
	s := &server{console: &console{ready: make(chan struct{})}, exited: make(chan struct{})}
	ports := files.ports
	if ports == nil {
		ports = freePorts(t, 3)
	}
	s.cmdPort, s.mediaPort = ports[0], ports[1]
	if files.metrics {
		s.metricsAddr = fmt.Sprintf("127.0.0.1:%d", ports[2])
	}
	conf := filepath.Join(dir, "dtoperator.conf")
	if files.conf != "" {
		conf = files.conf
	}
	s.conf = conf
	writeConf(t, conf, s, files)
	ctx, cancel := context.WithTimeout(context.Background(), serverTimeout)
	s.cancel = cancel
	s.cmd = exec.CommandContext(ctx, bin, "-c", conf)
	s.cmd.Env = cleanEnv()
	s.cmd.Stdout, s.cmd.Stderr = s.console, s.console
	s.cmd.WaitDelay = 5 * time.Second
	if err := s.cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start dtoperator: %w", err)
	}
	go func() { // owned by s: stop and the cleanup wait for exited
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.kill)
	if files.started != nil {
		files.started(s)
	}
	select {
	case <-s.console.ready:
	case <-s.exited:
		return nil, fmt.Errorf("dtoperator exited before it was ready (%v):\n%s", s.waitErr, s.console)
	case <-time.After(readyTimeout):
		s.kill()
		return nil, fmt.Errorf("dtoperator not ready within %v:\n%s", readyTimeout, s.console)
	}
	if !strings.Contains(s.console.readyLine, "dhe=true") {
		t.Fatalf("dtoperator runs without its DHE engine, so the 2017 Android client cannot connect "+
			"(build with cgo and OpenSSL 3: apt-get install gcc pkg-config libssl-dev):\n%s", s.console)
	}
	return s, nil
}

// kill ends the server if it still runs and waits for it.
func (s *server) kill() {
	s.cancel()
	<-s.exited
}

// stop sends SIGTERM and checks that the server exits 0 in time.
func (s *server) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
		t.Fatalf("dtoperator exited before SIGTERM (%v):\n%s", s.waitErr, s.console)
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("dtoperator did not exit within %v of SIGTERM:\n%s", stopTimeout, s.console)
	}
	if s.waitErr != nil {
		t.Errorf("dtoperator exited with %v after SIGTERM, want status 0:\n%s", s.waitErr, s.console)
	}
}

// freePorts returns n different loopback TCP ports that were free a
// moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// writeConf writes a config file in the old server's format.
func writeConf(t *testing.T, path string, s *server, f serverFiles) {
	t.Helper()
	conf := fmt.Sprintf(`# dtoperator.conf of the interop test, in the old server's format
command = %d   # legacy TLS command port
media   = %d   # legacy TLS media port
public  = %s
private = %s
users   = %s
listen  = 127.0.0.1
logs    = %s
autoban_exempt = 127.0.0.0/8   # every test client is on loopback; its wrong passwords must not ban the rest
`, s.cmdPort, s.mediaPort, f.cert, f.key, f.users, f.logs)
	if f.modernCert != "" {
		conf += fmt.Sprintf("modern_public  = %s\nmodern_private = %s\n", f.modernCert, f.modernKey)
	}
	if s.metricsAddr != "" {
		conf += "metrics = " + s.metricsAddr + "\n"
	}
	for _, line := range f.extra {
		conf += line + "\n"
	}
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
}

// cleanEnv is the test's environment without DTOPERATOR_* settings, which
// would override the config file.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DTOPERATOR_") {
			env = append(env, kv)
		}
	}
	return env
}

// javaClient runs LegacyClient against srv.
type javaClient struct {
	java, classes string
	srv           *server
	accts         []account
	wrong         string
}

// clientRun is what one run of the Java client reported.
type clientRun struct {
	pair           pair
	stdout, stderr string
	exit           int
	took           time.Duration
	order          []string          // scenarios in the order they ran
	result         map[string]string // scenario → "" (PASS) or the reason it failed
	tls            map[string]string // profile → "protocol suite"
	spans          map[string]span   // scenario → when it ran
	summary        bool              // the client reached its end
}

// span is when a scenario ran.
type span struct{ start, end time.Time }

// run runs the client for p with pin as the pinned certificate, all
// scenarios or only those listed in scenarios.
func (c javaClient) run(t *testing.T, pin string, p pair, scenarios string) clientRun {
	t.Helper()
	var users []string
	for _, a := range c.accts {
		users = append(users, a.name+":"+a.password)
	}
	args := []string{"-cp", c.classes, "LegacyClient",
		"--host", "127.0.0.1", "--command", fmt.Sprint(c.srv.cmdPort), "--media", fmt.Sprint(c.srv.mediaPort),
		"--pin", pin, "--caller", p.caller, "--callee", p.callee,
		"--users", strings.Join(users, ","), "--wrong-password", c.wrong}
	if scenarios != "" {
		args = append(args, "--scenarios", scenarios)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.java, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run java LegacyClient: %v\n%s", err, stderr.String())
	}
	r := parseClient(stdout.String(), stderr.String())
	r.pair, r.stderr, r.exit, r.took = p, stderr.String(), cmd.ProcessState.ExitCode(), time.Since(start)
	if ctx.Err() != nil {
		r.stderr += fmt.Sprintf("\n(killed after %v)", clientTimeout)
	}
	return r
}

// parseClient reads the client's "PASS s", "FAIL s: why", "TLS profile
// protocol suite" and "SUMMARY" lines on stdout and its "SPAN s start end"
// lines on stderr.
func parseClient(out, errOut string) clientRun {
	r := clientRun{stdout: out, result: map[string]string{}, tls: map[string]string{}, spans: map[string]span{}}
	for line := range strings.Lines(errOut) {
		var name string
		var start, end int64
		if n, _ := fmt.Sscanf(line, "SPAN %s %d %d", &name, &start, &end); n == 3 {
			r.spans[name] = span{time.UnixMilli(start), time.UnixMilli(end)}
		}
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "PASS":
			r.order = append(r.order, rest)
			r.result[rest] = ""
		case "FAIL":
			name, why, _ := strings.Cut(rest, ": ")
			r.order = append(r.order, name)
			r.result[name] = "FAIL: " + why
		case "TLS":
			profile, negotiated, _ := strings.Cut(rest, " ")
			r.tls[profile] = negotiated
		case "SUMMARY":
			r.summary = true
		}
	}
	return r
}

func (r clientRun) passed() []string {
	var ok []string
	for _, s := range r.order {
		if r.result[s] == "" {
			ok = append(ok, s)
		}
	}
	return ok
}

// check fails t for every failed scenario, a client that did not finish,
// and an android2017 profile that did not get the DHE suite.
func (r clientRun) check(t *testing.T, p pair, srv *server) {
	t.Helper()
	if len(r.order) == 0 {
		t.Fatalf("%v: the client reported no scenario (exit %d)\n%s%s", p, r.exit, r.stdout, r.stderr)
	}
	failed := 0
	for _, s := range r.order {
		if why := r.result[s]; why != "" {
			failed++
			t.Errorf("%v: %s: %s\nserver console while it ran:\n%s",
				p, s, strings.TrimPrefix(why, "FAIL: "), consoleDuring(srv.console.String(), r.spans[s]))
		}
	}
	if !r.summary || (failed == 0 && r.exit != 0) {
		t.Errorf("%v: the client did not finish cleanly (exit %d)\n%s%s", p, r.exit, r.stdout, r.stderr)
	}
	for _, profile := range []string{p.caller, p.callee} {
		if profile == "android2017" && r.tls[profile] != "TLSv1.2 "+suiteDHE {
			t.Errorf("%v: android2017 negotiated %q, want TLSv1.2 %s", p, r.tls[profile], suiteDHE)
		}
	}
}

// table renders the runs as scenarios × pairs, then each pair's TLS lines.
func table(runs []clientRun) string {
	var order []string
	seen := map[string]bool{}
	for _, r := range runs {
		for _, s := range r.order {
			if !seen[s] {
				seen[s] = true
				order = append(order, s)
			}
		}
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprint(w, "scenario")
	for _, r := range runs {
		fmt.Fprintf(w, "\t%v", r.pair)
	}
	for _, s := range order {
		fmt.Fprintf(w, "\n%s", s)
		for _, r := range runs {
			fmt.Fprintf(w, "\t%s", cell(r, s))
		}
	}
	fmt.Fprint(w, "\n(client run time)")
	for _, r := range runs {
		fmt.Fprintf(w, "\t%.1f s", r.took.Seconds())
	}
	w.Flush()
	for _, r := range runs {
		fmt.Fprintf(&b, "\n%v:", r.pair)
		for _, profile := range []string{r.pair.caller, r.pair.callee} {
			fmt.Fprintf(&b, "  TLS %s %s;", profile, r.tls[profile])
			if r.pair.caller == r.pair.callee {
				break
			}
		}
	}
	return b.String()
}

func cell(r clientRun, scenario string) string {
	why, ok := r.result[scenario]
	switch {
	case !ok:
		return "-"
	case why == "":
		return "PASS"
	case len(why) > 70:
		return why[:70] + "…"
	}
	return why
}

// consoleFormat is the time format at the start of the server's console
// lines (local time).
const consoleFormat = "2006-01-02 15:04:05.000"

// consoleDuring returns the console lines logged during sp.
func consoleDuring(console string, sp span) string {
	var b strings.Builder
	for line := range strings.Lines(console) {
		if len(line) < len(consoleFormat) {
			continue
		}
		at, err := time.ParseInLocation(consoleFormat, line[:len(consoleFormat)], time.Local)
		if err == nil && !at.Before(sp.start.Add(-10*time.Millisecond)) && !at.After(sp.end.Add(10*time.Millisecond)) {
			b.WriteString(line)
		}
	}
	return b.String()
}

// checkLogs checks that the log folder has the log file, that it logged
// user's logins, and that neither it nor the console shows a secret.
func checkLogs(t *testing.T, dir, consoleOut string, users, secrets []string) {
	t.Helper()
	logFile, err := os.ReadFile(filepath.Join(dir, "dtoperator.log"))
	if err != nil {
		t.Fatalf("log file: %v", err)
	}
	// Any of them: with -run, only some subtests log anyone in.
	if !slices.ContainsFunc(users, func(u string) bool { return bytes.Contains(logFile, []byte("user="+u)) }) {
		t.Errorf("dtoperator.log never names any of the users %q: the password check below proves little", users)
	}
	outputs := map[string][]byte{"console": []byte(consoleOut)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries { // rotated files too
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		outputs["logs/"+e.Name()] = b
	}
	for name, b := range outputs {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains a password used in the test", name)
			}
		}
	}
	t.Logf("checked %d log outputs (%d bytes of dtoperator.log) for %d passwords", len(outputs), len(logFile), len(secrets))
}
