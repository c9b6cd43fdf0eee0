package main

import (
	"bytes"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dtcall/dtcall/accounts"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == checkWorkerArg { // newCheckWorker's child
		os.Exit(run(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// writeFile writes content to dir/name and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testEnv returns an environment whose data folder is under dir.
func testEnv(dir string, extra ...string) []string {
	return append([]string{"HOME=" + dir, "PATH=/bin"}, extra...)
}

func TestLoadConfigLayers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	legacy := writeFile(t, dir, "dtoperator.conf", "command = 2000\nmedia = 2001\nwindow = 90s\n")
	tomlFile := writeFile(t, dir, "dtoperator.toml", "command = 3000\nmedia = 3001\nwindow = 120\n")
	tests := []struct {
		name    string
		args    []string
		env     []string
		command int
		media   int
		quic    int
		window  time.Duration
		file    string
	}{
		{"defaults", nil, nil, 1991, 2014, 1991, 5 * time.Minute, ""},
		{"legacy file", []string{"-c", legacy}, nil, 2000, 2001, 2000, 90 * time.Second, legacy},
		{"toml file", []string{"--config", tomlFile}, nil, 3000, 3001, 3000, 2 * time.Minute, tomlFile},
		{"file from env", nil, []string{"DTOPERATOR_CONFIG=" + legacy}, 2000, 2001, 2000, 90 * time.Second, legacy},
		{"flag file beats env file", []string{"-c", tomlFile}, []string{"DTOPERATOR_CONFIG=" + legacy}, 3000, 3001, 3000, 2 * time.Minute, tomlFile},
		{"env beats file", []string{"-c", legacy}, []string{"DTOPERATOR_COMMAND=4000", "DTOPERATOR_WINDOW=10"}, 4000, 2001, 4000, 10 * time.Second, legacy},
		{"flag beats env", []string{"-c", legacy, "--command", "5000"}, []string{"DTOPERATOR_COMMAND=4000"}, 5000, 2001, 5000, 90 * time.Second, legacy},
		{"flag equals form", []string{"--media=6000", "--quic=6001"}, nil, 1991, 6000, 6001, 5 * time.Minute, ""},
		{"quic from env", []string{"--command", "7000"}, []string{"DTOPERATOR_QUIC=7001"}, 7000, 2014, 7001, 5 * time.Minute, ""},
		{"window flag", []string{"--window", "1h"}, nil, 1991, 2014, 1991, time.Hour, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := loadConfig(tt.args, testEnv(dir, tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			got := [4]int{c.Command, c.Media, c.QUIC, int(c.Window / time.Second)}
			want := [4]int{tt.command, tt.media, tt.quic, int(tt.window / time.Second)}
			if got != want || c.File != tt.file {
				t.Errorf("command, media, quic, window s = %v, file %q; want %v, %q", got, c.File, want, tt.file)
			}
		})
	}
}

func TestLoadConfigStrings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	users := writeFile(t, dir, "users", string(demoUsers))
	users2 := writeFile(t, dir, "users2", string(demoUsers))
	conf := writeFile(t, dir, "old.conf", "Listen = \"::1\"\nusers = "+users+"\nciphers = \"A:B\" # list\nlogs = /tmp/l\n")
	env := testEnv(dir, "DTOPERATOR_USERS="+users2, "DTOPERATOR_DATA=/tmp/d")
	c, warnings, err := loadConfig([]string{"-c", conf, "--logs", ""}, env)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Listen: "::1", Command: 1991, Media: 2014, QUIC: 1991, Ciphers: "A:B",
		Users: users2, Logs: "", Data: "/tmp/d", Window: 5 * time.Minute, Drain: 15 * time.Minute,
		KeepAlive: 15 * time.Second, Idle: time.Minute,
		TLSHandshakesPerSource: 8, TLSHandshakesMax: 1024, QUICMaxConnsPerSource: 16, QUICMaxConns: 20000, File: conf,
		AutobanAttempts: 10, AutobanWindow: 2 * time.Minute, AutobanTime: 5 * time.Minute,
		LoginQueue: 256, LoginQueuePerSource: 4, LoginWait: 10 * time.Second}
	if c != want {
		t.Errorf("config = %+v\nwant %+v", c, want)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings = %q", warnings)
	}
}

func TestLoadConfigDataDefault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"systemd", []string{"STATE_DIRECTORY=/var/lib/dtoperator:/var/lib/other", "XDG_DATA_HOME=/x", "HOME=/h"}, "/var/lib/dtoperator"},
		{"xdg", []string{"XDG_DATA_HOME=/x", "HOME=/h"}, "/x/dtoperator"},
		{"relative xdg ignored", []string{"XDG_DATA_HOME=x", "HOME=/h"}, "/h/.local/share/dtoperator"},
		{"home", []string{"HOME=/h"}, "/h/.local/share/dtoperator"},
		{"flag wins", []string{"HOME=/h", "DTOPERATOR_DATA=/e"}, "/f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var args []string
			if tt.name == "flag wins" {
				args = []string{"--data", "/f"}
			}
			c, _, err := loadConfig(args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.Data != tt.want {
				t.Errorf("Data = %q, want %q", c.Data, tt.want)
			}
		})
	}
}

// TestLoadConfigOldFile checks that a config file of the old server, with
// relative paths, works unchanged.
func TestLoadConfigOldFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"public.pem", "private.pem", "dh2048.pem"} {
		writeFile(t, dir, name, "x")
	}
	conf := writeFile(t, dir, "dtoperator.conf", strings.ReplaceAll(`# old server
command = 1991
media = 2014
public = DIR/public.pem
private = DIR/private.pem
dhfile = DIR/dh2048.pem
ciphers = DHE-RSA-AES256-GCM-SHA384
`, "DIR", dir))
	c, _, err := loadConfig([]string{"-c", conf}, testEnv(dir))
	if err != nil {
		t.Fatal(err)
	}
	if c.Public != filepath.Join(dir, "public.pem") || c.Private != filepath.Join(dir, "private.pem") ||
		c.DHFile != filepath.Join(dir, "dh2048.pem") || c.Ciphers != "DHE-RSA-AES256-GCM-SHA384" {
		t.Errorf("config = %+v", c)
	}
}

// TestLoadConfigExamples checks that the files in examples/ load without
// error or warning, overriding only the paths, which don't exist here.
func TestLoadConfigExamples(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := writeFile(t, dir, "f", "x")
	for _, name := range []string{"dtoperator.conf", "dtoperator.toml"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("..", "..", "examples", name)
			args := []string{"-c", path, "--public", f, "--private", f, "--dhfile", f, "--users", f}
			c, warnings, err := loadConfig(args, testEnv(dir))
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 0 {
				t.Errorf("warnings: %q", warnings)
			}
			want := Config{Command: 1991, Media: 2014, QUIC: 1991, Public: f, Private: f, DHFile: f,
				Ciphers: "DHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384", Users: f,
				Logs: "/var/log/dtoperator", Data: "/var/lib/dtoperator", Window: 5 * time.Minute,
				Drain: 15 * time.Minute, KeepAlive: 15 * time.Second, Idle: time.Minute,
				CommandBurst: 200, CommandRate: 50, TLSHandshakesPerSource: 8, TLSHandshakesMax: 1024, QUICMaxConnsPerSource: 16, QUICMaxConns: 20000, File: path,
				AutobanAttempts: 10, AutobanWindow: 2 * time.Minute, AutobanTime: 5 * time.Minute,
				LoginQueue: 256, LoginQueuePerSource: 4, LoginWait: 10 * time.Second}
			if c != want {
				t.Errorf("config = %+v\nwant %+v", c, want)
			}
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range settings {
				if !bytes.Contains(text, []byte("\n"+s.key+" =")) {
					t.Errorf("%s lacks key %q", name, s.key)
				}
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := writeFile(t, dir, "file.pem", "x")
	tests := []struct {
		name, file, content string
		args, env           []string
		want                string
	}{
		{name: "legacy bad port", file: "dtoperator.conf", content: "# c\n\ncommand = abc\n",
			want: `dtoperator.conf: line 3: key "command": "abc" is not a port number (1-65535)`},
		{name: "legacy port range", file: "dtoperator.conf", content: "media = 65536\n",
			want: `dtoperator.conf: line 1: key "media": "65536" is not a port number (1-65535)`},
		{name: "legacy signed port", file: "dtoperator.conf", content: "quic = +1\n",
			want: `dtoperator.conf: line 1: key "quic": "+1" is not a port number (1-65535)`},
		{name: "legacy syntax", file: "dtoperator.conf", content: "command = 1\n\n\ncommand 1991\n",
			want: `dtoperator.conf: line 4: key "command 1991": missing "="`},
		{name: "legacy twice", file: "dtoperator.conf", content: "media = 1\nmedia = 2\n",
			want: `dtoperator.conf: line 2: key "media" set twice (first on line 1)`},
		{name: "legacy empty key", file: "dtoperator.conf", content: "= 2\n",
			want: `dtoperator.conf: line 1: missing key before "="`},
		{name: "legacy bad window", file: "dtoperator.conf", content: "window = soon\n",
			want: `dtoperator.conf: line 1: key "window": "soon" is not a duration ("5m", "90s") or a number of seconds`},
		{name: "legacy zero window", file: "dtoperator.conf", content: "window = 0\n",
			want: `dtoperator.conf: line 1: key "window": "0" is not a positive duration`},
		{name: "legacy negative window", file: "dtoperator.conf", content: "window = -5m\n",
			want: `dtoperator.conf: line 1: key "window": "-5m" is not a positive duration`},
		{name: "legacy bad listen", file: "dtoperator.conf", content: "listen = 0.0.0.0:1991\n",
			want: `dtoperator.conf: line 1: key "listen": "0.0.0.0:1991" is not an IP address or host name (ports are set by command, media and quic)`},
		{name: "legacy metrics without port", file: "dtoperator.conf", content: "metrics = 127.0.0.1\n",
			want: `dtoperator.conf: line 1: key "metrics": "127.0.0.1" is not a host:port address, such as "127.0.0.1:9464" or ":9464"`},
		{name: "legacy metrics bad host", file: "dtoperator.conf", content: "metrics = a_b:9464\n",
			want: `dtoperator.conf: line 1: key "metrics": "a_b:9464" is not a host:port address`},
		{name: "legacy metrics port range", file: "dtoperator.conf", content: "metrics = :65536\n",
			want: `dtoperator.conf: line 1: key "metrics": ":65536": port "65536" is not a port number (1-65535)`},
		{name: "toml metrics not string", file: "dtoperator.toml", content: "metrics = 9464\n",
			want: `dtoperator.toml: line 1: key "metrics": 9464 is not a string`},
		{name: "env metrics named port", env: []string{"DTOPERATOR_METRICS=localhost:http"},
			want: `DTOPERATOR_METRICS: "localhost:http": port "http" is not a port number (1-65535)`},
		{name: "flag metrics zero port", args: []string{"--metrics", "[::1]:0"},
			want: `--metrics: "[::1]:0": port "0" is not a port number (1-65535)`},
		{name: "legacy bad log level", file: "dtoperator.conf", content: "log_level = verbose\n",
			want: `dtoperator.conf: line 1: key "log_level": "verbose" is not a log level (debug, info, warn or error)`},
		{name: "toml log level not string", file: "dtoperator.toml", content: "log_level = -4\n",
			want: `dtoperator.toml: line 1: key "log_level": -4 is not a log level (debug, info, warn or error)`},
		{name: "env log level", env: []string{"DTOPERATOR_LOG_LEVEL=warning"},
			want: `DTOPERATOR_LOG_LEVEL: "warning" is not a log level (debug, info, warn or error)`},
		{name: "flag log level", args: []string{"--log_level="},
			want: `--log_level: "" is not a log level (debug, info, warn or error)`},
		{name: "legacy zero drain", file: "dtoperator.conf", content: "drain = 0s\n",
			want: `dtoperator.conf: line 1: key "drain": "0s" is not a positive duration`},
		{name: "env bad drain", env: []string{"DTOPERATOR_DRAIN=15 min"},
			want: `DTOPERATOR_DRAIN: "15 min" is not a duration ("5m", "90s") or a number of seconds`},
		{name: "toml bad port", file: "dtoperator.toml", content: "# c\ncommand = 70000\n",
			want: `dtoperator.toml: line 2: key "command": 70000 is not a port number (1-65535)`},
		{name: "toml port string", file: "dtoperator.toml", content: "media = \"x\"\n",
			want: `dtoperator.toml: line 1: key "media": "x" is not a port number (1-65535)`},
		{name: "toml path not string", file: "dtoperator.toml", content: "users = 5\n",
			want: `dtoperator.toml: line 1: key "users": 5 is not a string`},
		{name: "toml window float", file: "dtoperator.toml", content: "window = 1.5\n",
			want: `dtoperator.toml: line 1: key "window": 1.5 is not a duration ("5m", "90s") or a number of seconds`},
		{name: "toml syntax", file: "dtoperator.toml", content: "command = 1\nmedia = = 2\n",
			want: `dtoperator.toml: line 2, column 9: `},
		{name: "toml twice", file: "dtoperator.toml", content: "command = 1\ncommand = 2\n",
			want: `dtoperator.toml: toml: key command is already defined`},
		{name: "env bad port", env: []string{"DTOPERATOR_MEDIA=20 14"},
			want: `DTOPERATOR_MEDIA: "20 14" is not a port number (1-65535)`},
		{name: "env bad window", env: []string{"DTOPERATOR_WINDOW=5 minutes"},
			want: `DTOPERATOR_WINDOW: "5 minutes" is not a duration ("5m", "90s") or a number of seconds`},
		{name: "flag bad port", args: []string{"--quic", "0"},
			want: `--quic: "0" is not a port number (1-65535)`},
		{name: "flag bad window", args: []string{"--window=5x"},
			want: `--window: "5x" is not a duration ("5m", "90s") or a number of seconds`},
		{name: "flag missing value", args: []string{"--command"},
			want: `flag needs an argument: --command`},
		{name: "unknown flag", args: []string{"--port", "1"},
			want: `unknown flag: --port`},
		{name: "positional", args: []string{"serve"},
			want: `unexpected argument "serve"`},
		{name: "public alone", file: "dtoperator.conf", content: "\npublic = " + file + "\n",
			want: `dtoperator.conf: line 2: key "public": set without "private"; set both or neither`},
		{name: "private alone", env: []string{"DTOPERATOR_PRIVATE=" + file},
			want: `DTOPERATOR_PRIVATE: set without "public"; set both or neither`},
		{name: "public unreadable", args: []string{"--public", dir + "/nope.pem", "--private", file},
			want: `--public: open ` + dir + `/nope.pem: no such file or directory`},
		{name: "private unreadable", file: "dtoperator.conf", content: "public = " + file + "\nprivate = " + dir + "/nope\n",
			want: `dtoperator.conf: line 2: key "private": open ` + dir + `/nope: no such file or directory`},
		{name: "modern_public alone", file: "dtoperator.conf", content: "modern_public = " + file + "\n",
			want: `dtoperator.conf: line 1: key "modern_public": set without "modern_private"; set both or neither`},
		{name: "modern_private alone", env: []string{"DTOPERATOR_MODERN_PRIVATE=" + file},
			want: `DTOPERATOR_MODERN_PRIVATE: set without "modern_public"; set both or neither`},
		{name: "modern_public unreadable", args: []string{"--modern_public", dir + "/nope.pem", "--modern_private", file},
			want: `--modern_public: open ` + dir + `/nope.pem: no such file or directory`},
		{name: "modern_private unreadable", file: "dtoperator.toml",
			content: "modern_public = \"" + file + "\"\nmodern_private = \"" + dir + "\"\n",
			want:    `dtoperator.toml: line 2: key "modern_private": read ` + dir + `: is a directory`},
		{name: "dhfile unreadable", file: "dtoperator.conf", content: "dhfile = " + dir + "/nope\n",
			want: `dtoperator.conf: line 1: key "dhfile": open ` + dir + `/nope: no such file or directory`},
		{name: "users is a folder", env: []string{"DTOPERATOR_USERS=" + dir},
			want: `DTOPERATOR_USERS: read ` + dir + `: is a directory`},
		{name: "no data folder", env: []string{"HOME="},
			want: `no folder for the generated certificate: set "data" (--data, DTOPERATOR_DATA) or HOME, or set "public" and "private"`},
		{name: "missing config", args: []string{"-c", dir + "/missing.conf"},
			want: `read config: open ` + dir + `/missing.conf: no such file or directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args, env, want := tt.args, testEnv(dir, tt.env...), tt.want
			if tt.file != "" {
				path := writeFile(t, t.TempDir(), tt.file, tt.content)
				args = append([]string{"-c", path}, args...)
				want = path + strings.TrimPrefix(want, tt.file)
			}
			_, _, err := loadConfig(args, env)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error = %v\nwant %s", err, want)
			}
		})
	}
}

func TestLoadConfigMetrics(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	toml := writeFile(t, dir, "dtoperator.toml", "metrics = \"127.0.0.1:9464\"\n")
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"default off", nil, nil, ""},
		{"toml", []string{"-c", toml}, nil, "127.0.0.1:9464"},
		{"all interfaces", []string{"--metrics", ":9464"}, nil, ":9464"},
		{"ipv6", []string{"--metrics=[::1]:9464"}, nil, "[::1]:9464"},
		{"host name from env", nil, []string{"DTOPERATOR_METRICS=localhost:9100"}, "localhost:9100"},
		{"flag turns it off", []string{"-c", toml, "--metrics", ""}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := loadConfig(tt.args, testEnv(dir, tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			if c.Metrics != tt.want {
				t.Errorf("Metrics = %q, want %q", c.Metrics, tt.want)
			}
		})
	}
}

func TestLoadConfigLogLevel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	legacy := writeFile(t, dir, "dtoperator.conf", "log_level = Debug\n")
	toml := writeFile(t, dir, "dtoperator.toml", "log_level = \"error\"\n")
	tests := []struct {
		name string
		args []string
		env  []string
		want slog.Level
	}{
		{"default", nil, nil, slog.LevelInfo},
		{"legacy, any case", []string{"-c", legacy}, nil, slog.LevelDebug},
		{"toml", []string{"-c", toml}, nil, slog.LevelError},
		{"env", []string{"-c", legacy}, []string{"DTOPERATOR_LOG_LEVEL=WARN"}, slog.LevelWarn},
		{"flag", []string{"--log_level", "info"}, []string{"DTOPERATOR_LOG_LEVEL=warn"}, slog.LevelInfo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := loadConfig(tt.args, testEnv(dir, tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			if c.LogLevel != tt.want {
				t.Errorf("LogLevel = %v, want %v", c.LogLevel, tt.want)
			}
		})
	}
}

func TestLoadConfigDrain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	toml := writeFile(t, dir, "dtoperator.toml", "drain = 120\n")
	tests := []struct {
		name string
		args []string
		env  []string
		want time.Duration
	}{
		{"default", nil, nil, 15 * time.Minute},
		{"toml seconds", []string{"-c", toml}, nil, 2 * time.Minute},
		{"env", []string{"-c", toml}, []string{"DTOPERATOR_DRAIN=1h30m"}, 90 * time.Minute},
		{"flag", []string{"--drain", "30s"}, []string{"DTOPERATOR_DRAIN=1h"}, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := loadConfig(tt.args, testEnv(dir, tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			if c.Drain != tt.want {
				t.Errorf("Drain = %v, want %v", c.Drain, tt.want)
			}
		})
	}
}

// TestLoadConfigModernCert checks that the modern certificate pair is set
// apart from the public one, which may stay self-signed.
func TestLoadConfigModernCert(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rsaCert, rsaKey := writeFile(t, dir, "rsa.pem", "x"), writeFile(t, dir, "rsa.key", "x")
	ecCert, ecKey := writeFile(t, dir, "ec.pem", "x"), writeFile(t, dir, "ec.key", "x")
	conf := writeFile(t, dir, "dtoperator.conf", "public = "+rsaCert+"\nprivate = "+rsaKey+
		"\nmodern_public = "+ecCert+"\nmodern_private = "+ecKey+"\n")
	tests := []struct {
		name                string
		args, env           []string
		public, modern, key string
	}{
		{"neither", nil, nil, "", "", ""},
		{"both pairs", []string{"-c", conf}, nil, rsaCert, ecCert, ecKey},
		{"modern only, public self-signed", []string{"--modern_public", ecCert},
			[]string{"DTOPERATOR_MODERN_PRIVATE=" + ecKey}, "", ecCert, ecKey},
		{"flags clear the modern pair", []string{"-c", conf, "--modern_public=", "--modern_private="}, nil, rsaCert, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := loadConfig(tt.args, testEnv(dir, tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			if c.Public != tt.public || c.ModernPublic != tt.modern || c.ModernPrivate != tt.key {
				t.Errorf("public %q, modern_public %q, modern_private %q; want %q, %q, %q",
					c.Public, c.ModernPublic, c.ModernPrivate, tt.public, tt.modern, tt.key)
			}
		})
	}
}

func TestLoadConfigWarnings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	users := writeFile(t, dir, "users", string(demoUsers))
	conf := writeFile(t, dir, "dtoperator.conf", "command = 1991\n# comment\n\nfoo = bar\nusers = "+users+"\n")
	toml := writeFile(t, dir, "dtoperator.toml", "command = 1991\nfoo = 1\n[extra]\nkey = 2\n")
	empty := writeFile(t, dir, "empty.users", "")
	comments := writeFile(t, dir, "comments.users", "# no one yet\n\n")
	broken := writeFile(t, dir, "broken.users", "alice notahash\n")
	tests := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{"legacy", []string{"-c", conf}, nil, []string{conf + `: line 4: unknown key "foo" ignored`}},
		{"toml", []string{"-c", toml, "--users", users}, nil, []string{
			toml + `: unknown key "extra.key" ignored`, toml + `: line 2: unknown key "foo" ignored`}},
		{"env", []string{"--users", users}, []string{"DTOPERATOR_PORT=1"}, []string{`DTOPERATOR_PORT: unknown setting ignored`}},
		{"demo users", nil, nil, []string{"DEMO ACCOUNTS: no users file, so righthand, libprohibited and zapper log in " +
			"with their publicly known passwords; set users (--users, DTOPERATOR_USERS) for real accounts"}},
		{"empty users file", []string{"--users", empty}, nil, []string{
			"users file " + empty + " has no accounts: nobody can log in"}},
		{"users file of comments", nil, []string{"DTOPERATOR_USERS=" + comments}, []string{
			"users file " + comments + " has no accounts: nobody can log in"}},
		{"broken users file is no warning", []string{"--users", broken}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, warnings, err := loadConfig(tt.args, testEnv(dir, tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(warnings, tt.want) {
				t.Errorf("warnings = %q\nwant %q", warnings, tt.want)
			}
		})
	}
}

func TestLoadConfigHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "--help"} {
		var out bytes.Buffer
		_, _, err := loadConfigTo(&out, []string{"--command", "1", arg}, nil)
		if !errors.Is(err, errHelp) {
			t.Errorf("%s: error = %v, want errHelp", arg, err)
		}
		for _, want := range []string{"Usage:", "--config file", "--window duration", "DTOPERATOR_KEY",
			"dtoperator --version", "--version  ", "dtoperator user add NAME", "dtoperator user passwd NAME",
			"dtoperator user remove NAME", "dtoperator user list --users FILE", "dtoperator user --help"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: usage lacks %q:\n%s", arg, want, out.String())
			}
		}
	}
}

// TestDemoUsers checks that the embedded demo accounts are those of the
// example users file and of PROTOCOL.md. (The accounts package's tests
// check that these hashes verify against the published passwords.)
func TestDemoUsers(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "users"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(example, demoUsers) {
		t.Error("examples/users differs from cmd/dtoperator/demo.users")
	}
	entries, err := accounts.ParseUsers(bytes.NewReader(demoUsers))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"righthand":     "$s1$0e0810$gSWZo3ioKoQ5I8kCbc8A9A==$v3p1UXAOn9siRjdpgfxb+cDZtqwVobgQ8wZcDKZzT7WxsufEAv8EuhWA/xxAIzLJIp1HaRwbWm28Dz46nSxvZA==",
		"libprohibited": "$s1$0e0810$UorbGUUleeaoXcBxk4UefQ==$X17rxyN7nVt7kNmFVB2P89+XeH7++DVvLOgrPlscLRijkivmPPpczSE/VGH8eDrnkCSkND+xYzixFdNsvAiXHw==",
		"zapper":        "$s1$0e0810$3V4SumpOHS9nybc3F1i/OQ==$oTbAFn7wgw0be1a5OMi//kFD3JK7DM3akxk2YJkHwVS2ug2j+reDcE2XSpRg+9CFOKuLjZqAb4vUNjubSFDLZQ==",
	}
	got := make(map[string]string)
	for _, e := range entries {
		got[e.Name] = e.Hash.String()
	}
	if !maps.Equal(got, want) {
		t.Errorf("demo accounts = %v\nwant %v", got, want)
	}
}

func TestLoadConfigHandshakeCaps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name           string
		args, env      []string
		perSource, max int
		err            string
	}{
		{"defaults", nil, nil, 8, 1024, ""},
		{"flag and env", []string{"--tls_handshakes_per_source", "2"}, []string{"DTOPERATOR_TLS_HANDSHAKES_MAX=50"}, 2, 50, ""},
		{"zero", []string{"--tls_handshakes_max", "0"}, nil, 0, 0, "not a whole number 1-"},
		{"word", nil, []string{"DTOPERATOR_TLS_HANDSHAKES_PER_SOURCE=many"}, 0, 0, "DTOPERATOR_TLS_HANDSHAKES_PER_SOURCE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _, err := loadConfig(tt.args, testEnv(dir, tt.env...))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.TLSHandshakesPerSource != tt.perSource || c.TLSHandshakesMax != tt.max {
				t.Errorf("caps %d, %d; want %d, %d", c.TLSHandshakesPerSource, c.TLSHandshakesMax, tt.perSource, tt.max)
			}
		})
	}
}
