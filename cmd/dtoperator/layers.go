package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dtcall/dtcall/accounts"
	"github.com/dtcall/dtcall/accounts/autoban"
	"github.com/dtcall/dtcall/internal/conffile"
	tomlparser "github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/pflag"
)

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
		"command":                   1991,
		"media":                     2014,
		"window":                    "5m",
		"drain":                     "15m",
		"keepalive":                 "15s",
		"idle":                      "60s",
		"log_level":                 "info",
		"tls_handshakes_per_source": 8,    // tcp.DefaultMaxHandshakesPerSource
		"tls_handshakes_max":        1024, // tcp.DefaultMaxHandshakes
		"data":                      defaultDataDir(envs),

		"quic_max_conns_per_source": 16,
		"quic_max_conns":            20000,
		// Autoban and the login queue: Mumble's autoban defaults and
		// accounts' queue limits.
		"autoban_attempts":       autoban.DefaultAttempts,
		"autoban_window":         autoban.DefaultWindow.String(),
		"autoban_time":           autoban.DefaultTime.String(),
		"login_queue":            accounts.DefaultQueue,
		"login_queue_per_source": accounts.DefaultPerSource,
		"login_wait":             accounts.DefaultWait.String(),
		"reuse_port":             false,
		"nats":                   "",
		"node":                   "",
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

// keyPair is two keys that are set together or not at all, with their
// values.
type keyPair struct{ a, b, aVal, bVal string }

// checkPairs reports the first pair of which only one key is set.
func (l *loader) checkPairs(pairs ...keyPair) error {
	for _, p := range pairs {
		switch {
		case p.aVal != "" && p.bVal == "":
			return fmt.Errorf(`%s: set without %q; set both or neither`, l.sources[p.a], p.b)
		case p.bVal != "" && p.aVal == "":
			return fmt.Errorf(`%s: set without %q; set both or neither`, l.sources[p.b], p.a)
		}
	}
	return nil
}

// check validates what no single setting can: the certificate pairs, the
// files to read, the data folder and the cluster keys (checkCluster).
func (l *loader) check(c Config) error {
	if err := l.checkPairs(
		keyPair{"public", "private", c.Public, c.Private},
		keyPair{"modern_public", "modern_private", c.ModernPublic, c.ModernPrivate},
	); err != nil {
		return err
	}
	if c.Public == "" && c.Data == "" {
		return errors.New(`no folder for the generated certificate: set "data" ` +
			`(--data, DTOPERATOR_DATA) or HOME, or set "public" and "private"`)
	}
	files := []struct{ key, path string }{
		{"public", c.Public}, {"private", c.Private},
		{"modern_public", c.ModernPublic}, {"modern_private", c.ModernPrivate},
		{"dhfile", c.DHFile}, {"users", c.Users},
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if err := checkReadable(f.path); err != nil {
			return fmt.Errorf("%s: %w", l.sources[f.key], err)
		}
	}
	return l.checkCluster(c)
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
