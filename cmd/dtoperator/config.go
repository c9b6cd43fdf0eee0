package main

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dtcall/dtcall/internal/conffile"
	tomlparser "github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/pflag"
)

// Config is the server's configuration. loadConfig fills it from, lowest
// precedence first: built-in defaults, the config file, DTOPERATOR_*
// environment variables and command-line flags.
type Config struct {
	Listen  string        // "listen": address to bind; "" = all interfaces
	Command int           // "command": legacy TLS command port (TCP)
	Media   int           // "media": legacy TLS media port (TCP)
	QUIC    int           // "quic": UDP port of the QUIC front; defaults to Command
	Public  string        // "public": PEM certificate; "" = self-signed in Data
	Private string        // "private": PEM private key, set iff Public is
	DHFile  string        // "dhfile": DH parameters for DHE; "" = OpenSSL's groups
	Ciphers string        // "ciphers": OpenSSL cipher string; "" = built-in default
	Users   string        // "users": users file; "" = built-in demo accounts
	Logs    string        // "logs": log folder; "" = console only
	Data    string        // "data": folder for the generated certificate
	Window  time.Duration // "window": replay guard's timestamp window
	// "keepalive": how often the QUIC front pings an idle connection, so that
	// mobile NATs (which drop idle UDP mappings after ~30 s) keep it.
	KeepAlive time.Duration
	// "idle": a QUIC connection that hears nothing for this long is closed.
	Idle time.Duration
	File string // the config file that was loaded, "" if none
}

// LogValue lists the settings for a start-up log line. Config holds no
// secrets, only paths.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("file", c.File), slog.String("listen", c.Listen),
		slog.Int("command", c.Command), slog.Int("media", c.Media), slog.Int("quic", c.QUIC),
		slog.String("public", c.Public), slog.String("private", c.Private),
		slog.String("dhfile", c.DHFile), slog.String("ciphers", c.Ciphers),
		slog.String("users", c.Users), slog.String("logs", c.Logs),
		slog.String("data", c.Data), slog.Duration("window", c.Window),
		slog.Duration("keepalive", c.KeepAlive), slog.Duration("idle", c.Idle),
	)
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
// and returns errHelp.
func loadConfig(args, environ []string) (Config, []string, error) {
	return loadConfigTo(os.Stdout, args, environ)
}

// loadConfigTo is loadConfig printing the usage text to w.
func loadConfigTo(w io.Writer, args, environ []string) (Config, []string, error) {
	fs := newFlagSet()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			printUsage(w, fs)
		}
		return Config{}, nil, err
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

// warnings returns what an operator should hear about a valid config.
func (c Config) warnings() []string {
	if c.Users != "" {
		return nil
	}
	return []string{"DEMO ACCOUNTS: no users file, so righthand, libprohibited and zapper log in " +
		"with their publicly known passwords; set users (--users, DTOPERATOR_USERS) for real accounts"}
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

// loader merges the configuration layers into one koanf instance.
type loader struct {
	k        *koanf.Koanf
	sources  map[string]string // key → where its effective value was set
	warnings []string
}

// newLoader returns a loader holding the built-in defaults.
func newLoader(envs map[string]string) *loader {
	l := &loader{k: koanf.New("."), sources: make(map[string]string)}
	defaults := map[string]any{
		"command":   1991,
		"media":     2014,
		"window":    "5m",
		"keepalive": "15s",
		"idle":      "60s",
		"data":      defaultDataDir(envs),
	}
	// Loading a map from memory can't fail.
	_ = l.k.Load(confmap.Provider(defaults, "."), nil)
	for key := range defaults {
		l.sources[key] = fmt.Sprintf("default %s", key)
	}
	return l
}

// loadLayers loads the config file (if any), the environment and the flags.
func (l *loader) loadLayers(file string, fs *pflag.FlagSet, environ []string) error {
	if file != "" {
		if err := l.loadFile(file); err != nil {
			return err
		}
	}
	if err := l.loadEnv(environ); err != nil {
		return err
	}
	return l.loadFlags(fs)
}

// layer is one source of settings, and how messages name its keys.
type layer struct {
	k     *koanf.Koanf
	where func(key string) string // "dtoperator.conf: line 3", "DTOPERATOR_MEDIA"
	keyed bool                    // whether messages must add the key to where
}

// describe names key in layer for an error message.
func (ly layer) describe(key string) string {
	if ly.keyed {
		return fmt.Sprintf("%s: key %q", ly.where(key), key)
	}
	return ly.where(key)
}

// unknown is the warning for a key that no setting uses.
func (ly layer) unknown(key string) string {
	if ly.keyed {
		return fmt.Sprintf("%s: unknown key %q ignored", ly.where(key), key)
	}
	return ly.where(key) + ": unknown setting ignored"
}

// add checks every value of ly, warns about unknown keys and merges ly over
// the layers loaded before.
func (l *loader) add(ly layer) error {
	for _, key := range ly.k.Keys() {
		s, ok := settingFor(key)
		if !ok {
			l.warnings = append(l.warnings, ly.unknown(key))
			continue
		}
		var scratch Config
		if err := s.set(&scratch, ly.k.Get(key)); err != nil {
			return fmt.Errorf("%s: %w", ly.describe(key), err)
		}
		l.sources[key] = ly.describe(key)
	}
	return l.k.Merge(ly.k)
}

// loadFile reads the config file at path: TOML if its name ends in .toml,
// else the legacy format.
func (l *loader) loadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var parser koanf.Parser = conffile.Legacy{}
	if strings.EqualFold(filepath.Ext(path), ".toml") {
		parser = tomlparser.Parser()
	}
	k := koanf.New(".")
	if err := k.Load(rawBytes(data), parser); err != nil {
		return fileError(path, err)
	}
	lines := conffile.Lines(data)
	where := func(key string) string {
		if n, ok := lines[key]; ok {
			return fmt.Sprintf("%s: line %d", path, n)
		}
		return path
	}
	return l.add(layer{k: k, where: where, keyed: true})
}

// fileError names path and, for TOML, the position in a parse error.
func fileError(path string, err error) error {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		return &tomlError{path: path, err: de}
	}
	return fmt.Errorf("%s: %w", path, err)
}

// tomlError is a TOML syntax error with the file and position.
type tomlError struct {
	path string
	err  *toml.DecodeError
}

// Error formats e as "file: line 3, column 9: message".
func (e *tomlError) Error() string {
	row, col := e.err.Position()
	msg := strings.TrimPrefix(e.err.Error(), "toml: ")
	return fmt.Sprintf("%s: line %d, column %d: %s", e.path, row, col, msg)
}

// Unwrap returns the TOML parser's error.
func (e *tomlError) Unwrap() error { return e.err }

// rawBytes is a koanf.Provider for config bytes already read.
type rawBytes []byte

// ReadBytes returns b.
func (b rawBytes) ReadBytes() ([]byte, error) { return b, nil }

// Read is not supported: rawBytes needs a parser.
func (b rawBytes) Read() (map[string]any, error) {
	return nil, errors.New("rawBytes provider needs a parser")
}

// loadEnv loads the DTOPERATOR_* variables except DTOPERATOR_CONFIG.
func (l *loader) loadEnv(environ []string) error {
	names := make(map[string]string)
	transform := func(name, value string) (string, any) {
		key := strings.ToLower(strings.TrimPrefix(name, envPrefix))
		if name == envConfig || key == "" {
			return "", nil
		}
		names[key] = name
		return key, value
	}
	k := koanf.New(".")
	p := env.Provider("", env.Opt{
		Prefix:        envPrefix,
		TransformFunc: transform,
		EnvironFunc:   func() []string { return environ },
	})
	if err := k.Load(p, nil); err != nil {
		return fmt.Errorf("read environment: %w", err)
	}
	where := func(key string) string {
		if name, ok := names[key]; ok {
			return name
		}
		return envPrefix + strings.ToUpper(key)
	}
	return l.add(layer{k: k, where: where})
}

// loadFlags loads the flags that were set on the command line.
func (l *loader) loadFlags(fs *pflag.FlagSet) error {
	keep := func(key, value string) (string, any) {
		if _, ok := settingFor(key); !ok {
			return "", nil // --config, --help
		}
		return key, value
	}
	k := koanf.New(".")
	if err := k.Load(posflag.ProviderWithValue(fs, ".", nil, keep), nil); err != nil {
		return fmt.Errorf("read flags: %w", err)
	}
	return l.add(layer{k: k, where: func(key string) string { return "--" + key }})
}

// config decodes the merged layers and checks the settings together.
func (l *loader) config() (Config, error) {
	var c Config
	for _, s := range settings {
		if !l.k.Exists(s.key) {
			continue
		}
		if err := s.set(&c, l.k.Get(s.key)); err != nil {
			return Config{}, fmt.Errorf("%s: %w", l.sources[s.key], err)
		}
	}
	if !l.k.Exists("quic") {
		c.QUIC = c.Command
	}
	if err := l.check(c); err != nil {
		return Config{}, err
	}
	return c, nil
}

// check validates what no single setting can: the certificate pair, the
// files to read and the data folder.
func (l *loader) check(c Config) error {
	switch {
	case c.Public != "" && c.Private == "":
		return fmt.Errorf(`%s: set without "private"; set both or neither`, l.sources["public"])
	case c.Private != "" && c.Public == "":
		return fmt.Errorf(`%s: set without "public"; set both or neither`, l.sources["private"])
	case c.Public == "" && c.Data == "":
		return errors.New(`no folder for the generated certificate: set "data" ` +
			`(--data, DTOPERATOR_DATA) or HOME, or set "public" and "private"`)
	}
	files := []struct{ key, path string }{
		{"public", c.Public}, {"private", c.Private}, {"dhfile", c.DHFile}, {"users", c.Users},
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if err := checkReadable(f.path); err != nil {
			return fmt.Errorf("%s: %w", l.sources[f.key], err)
		}
	}
	return nil
}

// checkReadable reports whether path can be opened and read.
func checkReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Read(make([]byte, 1)); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// setting is one configuration key: its flag and how to store its value.
type setting struct {
	key, arg, usage string
	// set parses v (a string, or a TOML or default value) into c.
	set func(c *Config, v any) error
}

// settings lists every key, in the order of the usage text.
var settings = []setting{
	portSetting("command", "TCP port of the legacy TLS command connection (default 1991)",
		func(c *Config) *int { return &c.Command }),
	portSetting("media", "TCP port of the legacy TLS media connection (default 2014)",
		func(c *Config) *int { return &c.Media }),
	portSetting("quic", "UDP port of the QUIC front (default: the command port)",
		func(c *Config) *int { return &c.QUIC }),
	{"listen", "addr", `address to listen on (default "": all interfaces)`, setListen},
	stringSetting("public", "file", `TLS certificate, PEM (default "": self-signed, generated in the data folder)`,
		func(c *Config) *string { return &c.Public }),
	stringSetting("private", "file", "TLS private key, PEM, RSA (set with --public)",
		func(c *Config) *string { return &c.Private }),
	stringSetting("dhfile", "file", `DH parameters, PEM, for DHE (default "": OpenSSL's groups)`,
		func(c *Config) *string { return &c.DHFile }),
	stringSetting("ciphers", "list", `OpenSSL cipher string of the legacy TLS path (default "": built in)`,
		func(c *Config) *string { return &c.Ciphers }),
	stringSetting("users", "file", `users file (default "": demo accounts with public passwords)`,
		func(c *Config) *string { return &c.Users }),
	stringSetting("logs", "dir", `folder for log files rotated daily (default "": console only)`,
		func(c *Config) *string { return &c.Logs }),
	stringSetting("data", "dir", "folder for the generated certificate (default $STATE_DIRECTORY, "+
		"$XDG_DATA_HOME/dtoperator or ~/.local/share/dtoperator)",
		func(c *Config) *string { return &c.Data }),
	durationSetting("window", `replay guard: accepted clock difference, e.g. "5m", "90s" or seconds (default 5m)`,
		func(c *Config) *time.Duration { return &c.Window }),
	durationSetting("keepalive", "QUIC keep-alive period for idle connections (default 15s)",
		func(c *Config) *time.Duration { return &c.KeepAlive }),
	durationSetting("idle", "QUIC idle timeout: close a connection silent this long (default 60s)",
		func(c *Config) *time.Duration { return &c.Idle }),
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
	return setting{key: key, arg: "port", usage: usage, set: set}
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
	return setting{key: key, arg: arg, usage: usage, set: set}
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
	return setting{key, "duration", usage, set}
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

// newFlagSet defines -c/--config and one flag per setting. It prints
// nothing itself: loadConfig reports errors and prints the usage text.
func newFlagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("dtoperator", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	fs.StringP("config", "c", "", "config `file`: legacy key = value format, or TOML if it ends in .toml "+
		"(default $DTOPERATOR_CONFIG; none if unset)")
	for _, s := range settings {
		fs.Var(&flagValue{arg: s.arg}, s.key, s.usage)
	}
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
  dtoperator user add NAME [--users FILE] [--cost default|legacy]
                                       hash a password for the users file

Flags:
`)
	fmt.Fprint(w, fs.FlagUsages())
	fmt.Fprint(w, `
Every setting --KEY can also be set in the config file as "KEY = value" or in
the environment as DTOPERATOR_KEY. Flags win over the environment, which wins
over the file.
`)
}
