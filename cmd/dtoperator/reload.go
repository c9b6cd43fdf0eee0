package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/dtcall/dtcall/transport/tcp"
)

// certFiles are the certificate pairs the fronts serve: the legacy one
// ("public"/"private", RSA, also the DHE engine's), and the one QUIC and
// crypto/tls serve ("modern_public"/"modern_private", default the same).
type certFiles struct {
	legacyCert, legacyKey string
	modernCert, modernKey string
}

// legacy is the legacy front's configuration.
func (c certFiles) legacy(cfg Config) tcp.Config {
	tc := tcp.Config{CertFile: c.legacyCert, KeyFile: c.legacyKey, DHParamsFile: cfg.DHFile, Ciphers: cfg.Ciphers}
	if c.modernCert != c.legacyCert {
		tc.ModernCertFile, tc.ModernKeyFile = c.modernCert, c.modernKey
	}
	return tc
}

// certificates returns the configured certificate pairs (the legacy one
// self-signed in the data folder if none is set) and logs what clients pin.
func certificates(cfg Config, log *slog.Logger) (certFiles, error) {
	var c certFiles
	var err error
	if c.legacyCert, c.legacyKey, err = certificate(cfg, log); err != nil {
		return certFiles{}, err
	}
	c.modernCert, c.modernKey = c.legacyCert, c.legacyKey
	if cfg.ModernPublic != "" {
		c.modernCert, c.modernKey = cfg.ModernPublic, cfg.ModernPrivate
		fp, err := certFingerprint(c.modernCert)
		if err != nil {
			return certFiles{}, err
		}
		log.Info("certificate for QUIC and TLS 1.3/ECDHE clients", attrTag, "tls", attrDir, "system",
			"cert", c.modernCert, "fingerprint", fp)
	}
	// Load both pairs now: a key that does not match its certificate is an
	// error before anything is served or changed.
	for _, p := range [][2]string{{c.legacyCert, c.legacyKey}, {c.modernCert, c.modernKey}} {
		if _, err := tls.LoadX509KeyPair(p[0], p[1]); err != nil {
			return certFiles{}, fmt.Errorf("certificate %s / key %s: %w", p[0], p[1], err)
		}
	}
	return c, nil
}

// reload is SIGHUP: it loads the configuration again (file, environment
// and flags, as at start), the users file and the certificates, and applies
// the reloadable settings. Everything is loaded and checked first: on any
// error nothing changes, one error line says why, and the server goes on
// with the last good set. Connections and calls in progress are untouched,
// except the sessions of removed accounts, which are logged out.
func (s *server) reload() {
	cfg, err := s.loadReload()
	if err != nil {
		s.reloads.failed.Add(1)
		s.log.Error("reload failed; serving the last good configuration: "+err.Error(), attrTag, "config", attrDir, "error")
		return
	}
	s.reloads.ok.Add(1)
	if keys := restartNeeded(s.cfg, cfg); len(keys) > 0 {
		s.log.Warn("changed settings that take effect only after a restart: "+strings.Join(keys, ", "),
			attrTag, "config", attrDir, "system")
	}
	s.cfg = cfg
}

// loadReload loads and applies the reloadable settings; see reload.
func (s *server) loadReload() (Config, error) {
	cfg, warnings, err := loadConfigTo(io.Discard, s.args, s.environ)
	if err != nil {
		return Config{}, err
	}
	users, err := loadUsers(cfg, s.log)
	if err != nil {
		return Config{}, err
	}
	certs, err := certificates(cfg, s.log)
	if err != nil {
		return Config{}, err
	}
	// The legacy front checks the DHE engine's files (dhfile, ciphers) as it
	// loads them; QUIC's pair was loaded above, so it cannot fail after.
	if err := s.legacy.Reload(certs.legacy(cfg)); err != nil {
		return Config{}, err
	}
	if err := s.modern.Reload(certs.modernCert, certs.modernKey); err != nil {
		return Config{}, errors.Join(err, errors.New("the legacy front uses the new certificates already"))
	}
	for _, w := range warnings {
		s.log.Warn(w, attrTag, "config", attrDir, "system")
	}
	s.level.Set(cfg.LogLevel)
	s.calls.SetWindow(cfg.Window)
	s.store.Replace(users)
	out := s.calls.LogOutRemoved()
	s.log.Info("reloaded", attrTag, "config", attrDir, "system",
		"users", s.store.Len(), "logged_out", out, "log_level", cfg.LogLevel.String())
	return cfg, nil
}
