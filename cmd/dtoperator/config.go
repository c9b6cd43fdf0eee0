package main

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtcall/dtcall/accounts"
	"github.com/spf13/pflag"
)

// Config is the server's configuration. loadConfig fills it from, lowest
// precedence first: built-in defaults, the config file, DTOPERATOR_*
// environment variables and command-line flags.
type Config struct {
	Listen  string // "listen": address to bind; "" = all interfaces
	Metrics string // "metrics": "host:port" of the metrics listener; "" = off
	Command int    // "command": legacy TLS command port (TCP)
	Media   int    // "media": legacy TLS media port (TCP)
	QUIC    int    // "quic": UDP port of the QUIC front; defaults to Command

	Public  string // "public": PEM certificate; "" = self-signed in Data
	Private string // "private": PEM private key, set iff Public is
	// "modern_public", "modern_private": PEM certificate and key, set both
	// or neither, for QUIC and for crypto/tls clients (TLS 1.3, ECDHE) on
	// the legacy ports, such as an ECDSA one; "" = Public and Private. The
	// DHE engine always uses Public and Private (RSA).
	ModernPublic, ModernPrivate string

	DHFile   string     // "dhfile": DH parameters for DHE; "" = OpenSSL's groups
	Ciphers  string     // "ciphers": OpenSSL cipher string; "" = built-in default
	Users    string     // "users": users file; "" = built-in demo accounts
	Logs     string     // "logs": log folder; "" = console only
	LogLevel slog.Level // "log_level": least severe records logged; default info
	Data     string     // "data": folder for the generated certificate

	Window time.Duration // "window": replay guard's timestamp window
	// "drain": on SIGTERM or SIGINT, how long calls in progress may go on
	// (lame-duck mode) before the server closes them.
	Drain time.Duration
	// "keepalive": how often the QUIC front pings an idle connection, so that
	// mobile NATs (which drop idle UDP mappings after ~30 s) keep it.
	KeepAlive time.Duration
	// "idle": a QUIC connection that hears nothing for this long is closed.
	Idle time.Duration
	// "command_burst", "command_rate": the per-connection command rate
	// limit (core.Config.CommandBurst, CommandRate); 0 = the core's default.
	CommandBurst, CommandRate int

	// "tls_handshakes_per_source", "tls_handshakes_max": caps on legacy
	// connections still shaking hands, per source and in all
	// (tcp.Config.MaxHandshakesPerSource, MaxHandshakes).
	TLSHandshakesPerSource, TLSHandshakesMax int

	// "quic_max_conns_per_source", "quic_max_conns": QUIC connections at
	// once from one source (IPv4 address, IPv6 /64) and in all; more are
	// refused before their handshake.
	QUICMaxConnsPerSource, QUICMaxConns int

	// "autoban_attempts", "autoban_window", "autoban_time": that many failed
	// logins from one source within the window ban it for the time; 0
	// attempts turn autoban off.
	AutobanAttempts            int
	AutobanWindow, AutobanTime time.Duration
	// "autoban_exempt": sources never banned, CIDR prefixes normalized and
	// joined by ", " (a string, so that Config stays comparable).
	AutobanExempt string
	// "login_queue", "login_queue_per_source": password checks that may
	// wait, in all (soft: see accounts.Limits.Queue) and from one source;
	// "login_wait": the longest wait.
	LoginQueue, LoginQueuePerSource int
	LoginWait                       time.Duration
	// "reuse_port": open the ports with SO_REUSEPORT, so that a new
	// process can start on them while this one drains (reuseport.go).
	ReusePort bool

	// "nats": the NATS URLs of the cluster, normalized and joined by ","
	// (cluster.go); "" = a single node with the in-memory directory.
	NATS string
	Node string // "node": this node's name; "" = the host name
	// "nats_creds", "nats_user", "nats_password_file", "nats_ca",
	// "nats_cert", "nats_key": how to authenticate to NATS; paths only,
	// the password is read from its file at start.
	NATSCreds, NATSUser, NATSPasswordFile string
	NATSCA, NATSCert, NATSKey             string

	File string // the config file that was loaded, "" if none
}

// LogValue lists the file and every setting, in the order of the settings
// table, for a start-up log line. Config holds no secrets, only paths.
func (c Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 1+len(settings))
	attrs = append(attrs, slog.String("file", c.File))
	for _, s := range settings {
		attrs = append(attrs, slog.Any(s.key, s.get(&c)))
	}
	return slog.GroupValue(attrs...)
}

// restartNeeded returns the keys, in the order of the settings table, whose
// values differ between old and next and that a running server cannot apply
// by reloading: the server must restart for them.
func restartNeeded(old, next Config) []string {
	var keys []string
	for _, s := range settings {
		if !s.reload && s.get(&old) != s.get(&next) {
			keys = append(keys, s.key)
		}
	}
	return keys
}

// demoUsers is the users file served when no users file is configured: the
// sample accounts of the old distribution, whose passwords are public.
//
//go:embed demo.users
var demoUsers []byte

// errHelp is returned by loadConfig after -h or --help printed the usage
// text; the program should then exit with status 0.
var errHelp = pflag.ErrHelp

const (
	envPrefix = "DTOPERATOR_"
	// envConfig names the config file when -c is not given.
	envConfig = envPrefix + "CONFIG"
)

// loadConfig builds the configuration from the command-line arguments (without
// the program name) and the environment (as os.Environ returns it). It
// returns warnings to log, such as unknown keys, or one error that names the
// file and line, variable or flag at fault. On -h it prints usage to stdout
// and returns errHelp; on --version it prints the version to stdout and
// returns errVersion.
func loadConfig(args, environ []string) (Config, []string, error) {
	return loadConfigTo(os.Stdout, args, environ)
}

// loadConfigTo is loadConfig printing the usage text or version to w.
func loadConfigTo(w io.Writer, args, environ []string) (Config, []string, error) {
	fs := newFlagSet()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printUsage(w, fs)
		}
		return Config{}, nil, err
	}
	if fs.Changed("version") {
		fmt.Fprintln(w, versionLine(buildInfo()))
		return Config{}, nil, errVersion
	}
	if fs.NArg() > 0 {
		return Config{}, nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	envs := envMap(environ)
	l := newLoader(envs)
	file, _ := fs.GetString("config")
	if file == "" {
		file = envs[envConfig]
	}
	if err := l.loadLayers(file, fs, environ); err != nil {
		return Config{}, nil, err
	}
	cfg, err := l.config()
	if err != nil {
		return Config{}, nil, err
	}
	cfg.File = file
	return cfg, append(l.warnings, cfg.warnings()...), nil
}

// warnings returns what an operator should hear about a valid config: demo
// accounts, a users file without accounts, or cluster keys without "nats".
// A users file that does not parse is not reported here; loading the
// accounts fails with the error.
func (c Config) warnings() []string {
	w := c.clusterWarnings()
	if c.Users == "" {
		return append(w, "DEMO ACCOUNTS: no users file, so righthand, libprohibited and zapper log in "+
			"with their publicly known passwords; set users (--users, DTOPERATOR_USERS) for real accounts")
	}
	if entries, err := accounts.LoadFile(c.Users); err == nil && len(entries) == 0 {
		w = append(w, fmt.Sprintf("users file %s has no accounts: nobody can log in", c.Users))
	}
	return w
}

// envMap turns an environment list into a map; later entries win.
func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// defaultDataDir picks the folder for the generated certificate:
// $STATE_DIRECTORY (set by systemd's StateDirectory=), else
// $XDG_DATA_HOME/dtoperator, else ~/.local/share/dtoperator; "" if none.
func defaultDataDir(envs map[string]string) string {
	if dir, _, _ := strings.Cut(envs["STATE_DIRECTORY"], ":"); dir != "" {
		return dir
	}
	if x := envs["XDG_DATA_HOME"]; filepath.IsAbs(x) {
		return filepath.Join(x, "dtoperator")
	}
	if home := envs["HOME"]; home != "" {
		return filepath.Join(home, ".local", "share", "dtoperator")
	}
	return ""
}
