package main

import (
	"log/slog"
	"reflect"
	"slices"
	"testing"
	"time"
)

// sampleValues holds, for each kind of setting (its arg), a valid value
// that differs from the zero value.
var sampleValues = map[string]string{
	"port":      "1234",
	"addr":      "::1",
	"file":      "some.pem",
	"dir":       "/some/dir",
	"list":      "A:B",
	"duration":  "7s",
	"host:port": "127.0.0.1:9464",
	"level":     "debug",
	"count":     "5",
	"cidrs":     "10.0.0.0/8",
	"bool":      "true",
	"urls":      "nats://127.0.0.1:4222",
	"name":      "dt1",
	"user":      "dtcall",
}

// TestSettingsCoverConfig checks that each setting stores into one field of
// Config and that its getter reads that same field back, and that every
// field but File has exactly one setting. A new Config field without a
// setting, or a setting without a getter, fails here.
func TestSettingsCoverConfig(t *testing.T) {
	t.Parallel()
	owner := make(map[string]string) // Config field -> setting key
	for _, s := range settings {
		if s.set == nil || s.get == nil {
			t.Errorf("setting %q: set or get is nil", s.key)
			continue
		}
		sample, ok := sampleValues[s.arg]
		if !ok {
			t.Errorf("setting %q: no sample value for arg %q in sampleValues", s.key, s.arg)
			continue
		}
		var c Config
		if err := s.set(&c, sample); err != nil {
			t.Errorf("setting %q: set(%q): %v", s.key, sample, err)
			continue
		}
		changed := changedFields(Config{}, c)
		if len(changed) != 1 {
			t.Errorf("setting %q: set changed fields %v, want one", s.key, changed)
			continue
		}
		field := changed[0]
		if prev, dup := owner[field]; dup {
			t.Errorf("settings %q and %q both set Config.%s", prev, s.key, field)
		}
		owner[field] = s.key
		want := reflect.ValueOf(c).FieldByName(field).Interface()
		if got := s.get(&c); got != want {
			t.Errorf("setting %q: get = %v (%T), want Config.%s = %v (%T)", s.key, got, got, field, want, want)
		}
	}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		if _, ok := owner[name]; !ok && name != "File" {
			t.Errorf("Config.%s has no setting", name)
		}
	}
}

// changedFields returns the names of the fields that differ between a and b.
func changedFields(a, b Config) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var names []string
	for i := range va.NumField() {
		if !va.Field(i).Equal(vb.Field(i)) {
			names = append(names, va.Type().Field(i).Name)
		}
	}
	return names
}

// TestConfigLogValue checks that the start-up log line has "file" and then
// every key of the settings table, in order, with its value.
func TestConfigLogValue(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, _, err := loadConfig([]string{"--listen", "::1", "--window", "90s", "--ciphers", "A:B"}, testEnv(dir))
	if err != nil {
		t.Fatal(err)
	}
	c.File = "x.conf"
	v := c.LogValue()
	if v.Kind() != slog.KindGroup {
		t.Fatalf("LogValue kind %v, want group", v.Kind())
	}
	attrs := v.Group()
	if len(attrs) != 1+len(settings) {
		t.Fatalf("LogValue has %d attributes, want %d: %v", len(attrs), 1+len(settings), attrs)
	}
	if !attrs[0].Equal(slog.String("file", "x.conf")) {
		t.Errorf("first attribute %v, want file=x.conf", attrs[0])
	}
	for i, s := range settings {
		want := slog.Any(s.key, s.get(&c))
		if a := attrs[1+i]; !a.Equal(want) {
			t.Errorf("attribute %d = %v, want %v", 1+i, a, want)
		}
	}
	for _, want := range []slog.Attr{
		slog.String("listen", "::1"), slog.Int("command", 1991),
		slog.Duration("window", 90*time.Second), slog.String("ciphers", "A:B"),
	} {
		found := false
		for _, a := range attrs {
			found = found || a.Equal(want)
		}
		if !found {
			t.Errorf("LogValue lacks %v: %v", want, attrs)
		}
	}
}

// TestReloadableKeys pins which keys a reload applies; every other key,
// including any new one, needs a restart.
func TestReloadableKeys(t *testing.T) {
	t.Parallel()
	var got []string
	for _, s := range settings {
		if s.reload {
			got = append(got, s.key)
		}
	}
	want := []string{"public", "private", "modern_public", "modern_private", "dhfile", "ciphers",
		"users", "log_level", "window", "drain"}
	if !slices.Equal(got, want) {
		t.Errorf("reloadable keys %q, want %q", got, want)
	}
}

func TestRestartNeeded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base, _, err := loadConfig(nil, testEnv(dir))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		{"same", func(c *Config) {}, nil},
		{"reloadable only", func(c *Config) {
			c.Users, c.Public, c.Private, c.DHFile, c.Ciphers = "u", "p", "k", "d", "c"
			c.ModernPublic, c.ModernPrivate = "mp", "mk"
			c.Window, c.LogLevel, c.Drain = time.Hour, slog.LevelDebug, time.Second
		}, nil},
		{"file only", func(c *Config) { c.File = "other.conf" }, nil},
		{"one port", func(c *Config) { c.Media = 2 }, []string{"media"}},
		{"table order", func(c *Config) {
			c.Idle, c.Listen, c.Command, c.Users = time.Second, "::1", 1, "u"
		}, []string{"command", "listen", "idle"}},
		{"all restart keys", func(c *Config) {
			c.Command, c.Media, c.QUIC, c.Listen, c.Metrics = 1, 2, 3, "::1", ":1"
			c.Logs, c.Data, c.KeepAlive, c.Idle = "l", "d", time.Second, time.Second
		}, []string{"command", "media", "quic", "listen", "metrics", "logs", "data", "keepalive", "idle"}},
		{"cluster keys", func(c *Config) {
			c.NATS, c.Node, c.NATSCreds, c.NATSUser = "nats://n:4222", "a", "c", "u"
			c.NATSPasswordFile, c.NATSCA, c.NATSCert, c.NATSKey = "p", "ca", "crt", "k"
		}, []string{"nats", "node", "nats_creds", "nats_user", "nats_password_file", "nats_ca", "nats_cert", "nats_key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			next := base
			tt.edit(&next)
			if got := restartNeeded(base, next); !slices.Equal(got, tt.want) {
				t.Errorf("restartNeeded = %q, want %q", got, tt.want)
			}
		})
	}
}
