package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/pflag"
)

// setting is one configuration key: its flag, how to store its value and
// how to read it back.
type setting struct {
	key, arg, usage string
	// set parses v (a string, or a TOML or default value) into c.
	set func(c *Config, v any) error
	// get returns the value set stored in c, for Config.LogValue and
	// restartNeeded; it must be comparable (int, string, time.Duration,
	// slog.Level).
	get func(c *Config) any
	// reload is whether a running server can apply a new value (on
	// SIGHUP); a change to any other key needs a restart.
	reload bool
}

// reloadable returns s marked as applied by a reload.
func (s setting) reloadable() setting {
	s.reload = true
	return s
}

// settings lists every key, in the order of the usage text.
var settings = []setting{
	portSetting("command", "TCP port of the legacy TLS command connection (default 1991)",
		func(c *Config) *int { return &c.Command }),
	portSetting("media", "TCP port of the legacy TLS media connection (default 2014)",
		func(c *Config) *int { return &c.Media }),
	portSetting("quic", "UDP port of the QUIC front (default: the command port)",
		func(c *Config) *int { return &c.QUIC }),
	{key: "listen", arg: "addr", usage: `address to listen on (default "": all interfaces)`,
		set: setListen, get: func(c *Config) any { return c.Listen }},
	{key: "metrics", arg: "host:port", usage: `address of the metrics listener, e.g. "127.0.0.1:9464" ` +
		`or ":9464" (default "": off)`,
		set: setMetrics, get: func(c *Config) any { return c.Metrics }},
	stringSetting("public", "file", `TLS certificate, PEM (default "": self-signed, generated in the data folder)`,
		func(c *Config) *string { return &c.Public }).reloadable(),
	stringSetting("private", "file", "TLS private key, PEM, RSA (set with --public)",
		func(c *Config) *string { return &c.Private }).reloadable(),
	stringSetting("modern_public", "file", "TLS certificate, PEM, any key type, for QUIC and for TLS 1.3 and ECDHE "+
		`clients on the legacy ports (default "": the public certificate)`,
		func(c *Config) *string { return &c.ModernPublic }).reloadable(),
	stringSetting("modern_private", "file", "TLS private key, PEM, of modern_public (set with --modern_public)",
		func(c *Config) *string { return &c.ModernPrivate }).reloadable(),
	stringSetting("dhfile", "file", `DH parameters, PEM, for DHE (default "": OpenSSL's groups)`,
		func(c *Config) *string { return &c.DHFile }).reloadable(),
	stringSetting("ciphers", "list", `OpenSSL cipher string of the legacy TLS path (default "": built in)`,
		func(c *Config) *string { return &c.Ciphers }).reloadable(),
	stringSetting("users", "file", `users file (default "": demo accounts with public passwords)`,
		func(c *Config) *string { return &c.Users }).reloadable(),
	stringSetting("logs", "dir", `folder for log files rotated daily (default "": console only)`,
		func(c *Config) *string { return &c.Logs }),
	{key: "log_level", arg: "level", usage: "least severe log records written: debug, info, warn or error (default info)",
		set: setLogLevel, get: func(c *Config) any { return c.LogLevel }, reload: true},
	stringSetting("data", "dir", "folder for the generated certificate (default $STATE_DIRECTORY, "+
		"$XDG_DATA_HOME/dtoperator or ~/.local/share/dtoperator)",
		func(c *Config) *string { return &c.Data }),
	durationSetting("window", `replay guard: accepted clock difference, e.g. "5m", "90s" or seconds (default 5m)`,
		func(c *Config) *time.Duration { return &c.Window }).reloadable(),
	durationSetting("drain", "on SIGTERM or SIGINT, how long calls in progress may go on before they are cut (default 15m)",
		func(c *Config) *time.Duration { return &c.Drain }).reloadable(),
	durationSetting("keepalive", "QUIC keep-alive period for idle connections (default 15s)",
		func(c *Config) *time.Duration { return &c.KeepAlive }),
	durationSetting("idle", "QUIC idle timeout: close a connection silent this long (default 60s)",
		func(c *Config) *time.Duration { return &c.Idle }),
	countSetting("command_burst", 1, "commands a connection may send at once before the rate limit applies (default 200)",
		func(c *Config) *int { return &c.CommandBurst }),
	countSetting("command_rate", 1, "commands a second a connection may send after its burst; over it a command is "+
		"refused, and a sustained flood closes the connection (default 50)",
		func(c *Config) *int { return &c.CommandRate }),
	countSetting("tls_handshakes_per_source", 1, "legacy ports: connections from one address (IPv6: one /64) "+
		"still shaking hands; one more is closed at once (default 8)",
		func(c *Config) *int { return &c.TLSHandshakesPerSource }),
	countSetting("tls_handshakes_max", 1, "legacy ports: connections still shaking hands in all; "+
		"one more cuts the oldest (default 1024)",
		func(c *Config) *int { return &c.TLSHandshakesMax }),
	countSetting("quic_max_conns_per_source", 1, "QUIC connections from one address (IPv6: one /64) at once; "+
		"more are refused before their handshake (default 16)",
		func(c *Config) *int { return &c.QUICMaxConnsPerSource }),
	countSetting("quic_max_conns", 1, "QUIC connections at once in all; more are refused before their handshake (default 20000)",
		func(c *Config) *int { return &c.QUICMaxConns }),
	countSetting("autoban_attempts", 0, "failed logins from one source (IPv4 address, IPv6 /64) within "+
		"autoban_window that ban it for autoban_time; 0 turns autoban off (default 10)",
		func(c *Config) *int { return &c.AutobanAttempts }),
	durationSetting("autoban_window", "the time in which autoban_attempts failures ban a source (default 2m)",
		func(c *Config) *time.Duration { return &c.AutobanWindow }),
	durationSetting("autoban_time", "how long a ban lasts (default 5m)",
		func(c *Config) *time.Duration { return &c.AutobanTime }),
	{key: "autoban_exempt", arg: "cidrs", usage: `sources never banned: CIDR prefixes or addresses, ` +
		`separated by commas or spaces, e.g. "10.0.0.0/8, 2001:db8::/48" (default "": none)`,
		set: setAutobanExempt, get: func(c *Config) any { return c.AutobanExempt }},
	countSetting("login_queue", 1, "password checks that may wait in all, in each lane; beyond it a login "+
		"still waits if it can expect a check within half of login_wait, up to 8 times as many waiting, "+
		"and is refused at once otherwise (default 256)",
		func(c *Config) *int { return &c.LoginQueue }),
	countSetting("login_queue_per_source", 1, "password checks that may wait from one source; beyond it "+
		"a login is refused at once (default 4)",
		func(c *Config) *int { return &c.LoginQueuePerSource }),
	durationSetting("login_wait", "longest wait of a login for its password check; then it is refused (default 10s)",
		func(c *Config) *time.Duration { return &c.LoginWait }),
	boolSetting("reuse_port", "open the ports with SO_REUSEPORT, so that a new dtoperator can start on them "+
		"while this one drains its calls (Linux only; default false)",
		func(c *Config) *bool { return &c.ReusePort }),
	{key: "nats", arg: "urls", usage: `NATS servers of the cluster to join, comma-separated nats:// or tls:// URLs, ` +
		`e.g. "nats://10.0.0.5:4222,nats://10.0.0.6:4222"; no credentials in them (default "": a single node)`,
		set: setNATS, get: func(c *Config) any { return c.NATS }},
	{key: "node", arg: "name", usage: `this server's name in the cluster: letters, digits, '-' and '_' ` +
		`(default "": the host name)`,
		set: setNode, get: func(c *Config) any { return c.Node }},
	stringSetting("nats_creds", "file", `NATS credentials file (JWT and NKey seed) (default "": none)`,
		func(c *Config) *string { return &c.NATSCreds }),
	stringSetting("nats_user", "user", `NATS user name, with nats_password_file (default "": none)`,
		func(c *Config) *string { return &c.NATSUser }),
	stringSetting("nats_password_file", "file", `file holding nats_user's password, read at start `+
		`(default "": none)`,
		func(c *Config) *string { return &c.NATSPasswordFile }),
	stringSetting("nats_ca", "file", `CA certificate, PEM, that signed the NATS servers' certificates `+
		`(default "": the system's)`,
		func(c *Config) *string { return &c.NATSCA }),
	stringSetting("nats_cert", "file", `client certificate, PEM, for mutual TLS with NATS (set with --nats_key)`,
		func(c *Config) *string { return &c.NATSCert }),
	stringSetting("nats_key", "file", "private key, PEM, of nats_cert",
		func(c *Config) *string { return &c.NATSKey }),
}

// boolSetting is a setting holding true or false: a TOML boolean, or
// true/false, yes/no, on/off, 1/0 in any case. A bare --KEY is true.
func boolSetting(key, usage string, field func(*Config) *bool) setting {
	set := func(c *Config, v any) error {
		b, ok := v.(bool)
		if s, isStr := v.(string); isStr {
			switch strings.ToLower(s) {
			case "true", "yes", "on", "1":
				b, ok = true, true
			case "false", "no", "off", "0":
				b, ok = false, true
			}
		}
		if !ok {
			return fmt.Errorf("%s is not true or false", show(v))
		}
		*field(c) = b
		return nil
	}
	get := func(c *Config) any { return *field(c) }
	return setting{key: key, arg: "bool", usage: usage, set: set, get: get}
}

// settingFor returns the setting of key.
func settingFor(key string) (setting, bool) {
	for _, s := range settings {
		if s.key == key {
			return s, true
		}
	}
	return setting{}, false
}

// portSetting is a setting holding a port number 1..65535.
func portSetting(key, usage string, field func(*Config) *int) setting {
	set := func(c *Config, v any) error {
		n, ok := toInt(v)
		if !ok || n < 1 || n > 65535 {
			return fmt.Errorf("%s is not a port number (1-65535)", show(v))
		}
		*field(c) = int(n)
		return nil
	}
	get := func(c *Config) any { return *field(c) }
	return setting{key: key, arg: "port", usage: usage, set: set, get: get}
}

// maxCount bounds count settings: far above any sane value, and small
// enough that nothing sized by one overflows.
const maxCount = 1 << 20

// countSetting is a setting holding a whole number min..maxCount.
func countSetting(key string, min int64, usage string, field func(*Config) *int) setting {
	set := func(c *Config, v any) error {
		n, ok := toInt(v)
		if !ok || n < min || n > maxCount {
			return fmt.Errorf("%s is not a whole number %d-%d", show(v), min, maxCount)
		}
		*field(c) = int(n)
		return nil
	}
	get := func(c *Config) any { return *field(c) }
	return setting{key: key, arg: "count", usage: usage, set: set, get: get}
}

// setAutobanExempt stores a list of CIDR prefixes or addresses: a string
// separated by commas or white space, or a TOML array of strings. It is
// stored as a string, normalized ("10.0.0.0/8, 2001:db8::/48"), so that
// Config stays comparable; exemptPrefixes parses it.
func setAutobanExempt(c *Config, v any) error {
	var items []string
	switch v := v.(type) {
	case string:
		items = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return fmt.Errorf("%s is not a string", show(x))
			}
			items = append(items, s)
		}
	default:
		return fmt.Errorf("%s is not a list of CIDR prefixes", show(v))
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		p, err := parsePrefix(strings.TrimSpace(it))
		if err != nil {
			return err
		}
		out = append(out, p.String())
	}
	c.AutobanExempt = strings.Join(out, ", ")
	return nil
}

// parsePrefix parses "10.0.0.0/8" or a lone address (a /32 or /128).
// Host bits set in a prefix are an error: "10.0.0.1/8" is a typo for
// something.
func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix or an IP address", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// exemptPrefixes parses the stored autoban_exempt value.
func exemptPrefixes(s string) []netip.Prefix {
	var out []netip.Prefix
	for _, it := range strings.Split(s, ", ") {
		if p, err := parsePrefix(it); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// stringSetting is a setting holding a string, such as a path.
func stringSetting(key, arg, usage string, field func(*Config) *string) setting {
	set := func(c *Config, v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s is not a string", show(v))
		}
		*field(c) = s
		return nil
	}
	get := func(c *Config) any { return *field(c) }
	return setting{key: key, arg: arg, usage: usage, set: set, get: get}
}

// setListen stores an IP address or host name, without brackets or port.
func setListen(c *Config, v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("%s is not a string", show(v))
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if _, err := netip.ParseAddr(host); err != nil && !validHostName(host) && host != "" {
		return fmt.Errorf("%s is not an IP address or host name "+
			"(ports are set by command, media and quic)", show(v))
	}
	c.Listen = host
	return nil
}

// setMetrics stores a listen address "host:port" whose host is empty, an IP
// address (in brackets for IPv6) or a host name, and whose port is a number
// 1..65535; or "", which turns metrics off.
func setMetrics(c *Config, v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("%s is not a string", show(v))
	}
	if s != "" {
		host, port, err := net.SplitHostPort(s)
		n, isNum := toInt(port)
		_, ipErr := netip.ParseAddr(host)
		switch {
		case err != nil || host != "" && ipErr != nil && !validHostName(host):
			return fmt.Errorf(`%s is not a host:port address, such as "127.0.0.1:9464" or ":9464"`, show(v))
		case !isNum || n < 1 || n > 65535:
			return fmt.Errorf("%s: port %q is not a port number (1-65535)", show(v), port)
		}
	}
	c.Metrics = s
	return nil
}

// logLevels are the values of "log_level".
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

// setLogLevel stores a log level named in any case.
func setLogLevel(c *Config, v any) error {
	s, ok := v.(string)
	level, known := logLevels[strings.ToLower(s)]
	if !ok || !known {
		return fmt.Errorf("%s is not a log level (debug, info, warn or error)", show(v))
	}
	c.LogLevel = level
	return nil
}

// validHostName reports whether s looks like a DNS host name.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 || strings.HasPrefix(s, "-") || strings.HasPrefix(s, ".") {
		return false
	}
	for _, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && r != '-' && r != '.' {
			return false
		}
	}
	return true
}

// durationSetting is a setting holding a positive duration: a Go duration
// string or a whole number of seconds (a string of digits, or a TOML
// integer).
func durationSetting(key, usage string, field func(*Config) *time.Duration) setting {
	set := func(c *Config, v any) error {
		d, ok := toDuration(v)
		if !ok {
			return fmt.Errorf(`%s is not a duration ("5m", "90s") or a number of seconds`, show(v))
		}
		if d <= 0 {
			return fmt.Errorf("%s is not a positive duration", show(v))
		}
		*field(c) = d
		return nil
	}
	get := func(c *Config) any { return *field(c) }
	return setting{key: key, arg: "duration", usage: usage, set: set, get: get}
}

// toDuration converts a duration string or a number of seconds.
func toDuration(v any) (time.Duration, bool) {
	if n, ok := toInt(v); ok {
		if n > int64(math.MaxInt64/time.Second) || n < 0 {
			return 0, n < 0
		}
		return time.Duration(n) * time.Second, true
	}
	s, ok := v.(string)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

// toInt converts an integer, or a string of decimal digits, to int64.
func toInt(v any) (int64, bool) {
	switch v := v.(type) {
	case int:
		return int64(v), true
	case int64:
		return v, true
	case string:
		if v == "" || strings.Trim(v, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// show formats a config value for an error message: strings quoted.
func show(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// newFlagSet defines -c/--config, one flag per setting and --version. It prints
// nothing itself: loadConfig reports errors and prints the usage text.
func newFlagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("dtoperator", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	fs.StringP("config", "c", "", "config `file`: legacy key = value format, or TOML if it ends in .toml "+
		"(default $DTOPERATOR_CONFIG; none if unset)")
	for _, s := range settings {
		f := fs.VarPF(&flagValue{arg: s.arg}, s.key, "", s.usage)
		if s.arg == "bool" {
			f.NoOptDefVal = "true" // --reuse_port alone turns it on
		}
	}
	fs.BoolFunc("version", "print the version and exit", func(v string) error {
		if v != "true" {
			return errors.New("takes no value")
		}
		return nil
	})
	return fs
}

// flagValue is a string flag whose usage shows arg as the value's name.
type flagValue struct{ val, arg string }

// String returns the value.
func (v *flagValue) String() string { return v.val }

// Set stores s; loadConfig checks it later, naming the flag.
func (v *flagValue) Set(s string) error {
	v.val = s
	return nil
}

// Type returns the name of the value in the usage text.
func (v *flagValue) Type() string { return v.arg }

// printUsage writes the help text for fs to w.
func printUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprint(w, `Usage:
  dtoperator [flags]                   run the call server
  dtoperator --version                 print the version and exit
`)
	for _, v := range userVerbs {
		fmt.Fprintf(w, "  dtoperator user %s %s\n%39s%s\n", v.name, v.args, "", v.summary)
	}
	fmt.Fprint(w, `  dtoperator user --help               more about the user commands

Flags:
`)
	fmt.Fprint(w, fs.FlagUsages())
	fmt.Fprint(w, `
Every setting --KEY can also be set in the config file as "KEY = value" or in
the environment as DTOPERATOR_KEY. Flags win over the environment, which wins
over the file.
`)
}
