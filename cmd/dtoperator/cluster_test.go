package main

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfigCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := writeFile(t, dir, "f", "x")
	toml := writeFile(t, dir, "dtoperator.toml", "nats = \"nats://n1:4222, nats://n2:4222\"\nnode = \"dt1\"\n"+
		"nats_creds = \""+f+"\"\nnats_ca = \""+f+"\"\n")
	tests := []struct {
		name string
		args []string
		env  []string
		want Config // only the cluster fields are compared
	}{
		{"default: a single node", nil, nil, Config{}},
		{"one URL", []string{"--nats", "nats://127.0.0.1:4222"}, nil, Config{NATS: "nats://127.0.0.1:4222"}},
		{"tls and ipv6", []string{"--nats", " tls://[::1]:4222 ,nats://nats.example:4333, "}, nil,
			Config{NATS: "tls://[::1]:4222,nats://nats.example:4333"}},
		{"trailing slash", nil, []string{"DTOPERATOR_NATS=nats://a:1/"}, Config{NATS: "nats://a:1"}},
		{"toml", []string{"-c", toml}, nil,
			Config{NATS: "nats://n1:4222,nats://n2:4222", Node: "dt1", NATSCreds: f, NATSCA: f}},
		{"user and password file", []string{"--nats", "nats://a:1", "--nats_user", "dt", "--nats_password_file", f}, nil,
			Config{NATS: "nats://a:1", NATSUser: "dt", NATSPasswordFile: f}},
		{"mutual tls", []string{"--nats", "tls://a:1", "--nats_cert", f, "--nats_key", f, "--node", "A-b_9"}, nil,
			Config{NATS: "tls://a:1", Node: "A-b_9", NATSCert: f, NATSKey: f}},
		{"flag turns it off", []string{"-c", toml, "--nats", "", "--nats_creds", "", "--nats_ca", "", "--node", ""}, nil, Config{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, warnings, err := loadConfig(tt.args, testEnv(dir, tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			got := Config{NATS: c.NATS, Node: c.Node, NATSCreds: c.NATSCreds, NATSUser: c.NATSUser,
				NATSPasswordFile: c.NATSPasswordFile, NATSCA: c.NATSCA, NATSCert: c.NATSCert, NATSKey: c.NATSKey}
			if got != tt.want {
				t.Errorf("cluster settings %+v\nwant %+v", got, tt.want)
			}
			for _, w := range warnings {
				if strings.Contains(w, "nats") {
					t.Errorf("warning %q", w)
				}
			}
		})
	}
}

func TestLoadConfigClusterErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := writeFile(t, dir, "f", "x")
	const creds = "put credentials in nats_creds or nats_user and nats_password_file"
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"user info", []string{"--nats", "nats://dt:s3cret@127.0.0.1:4222"}, nil, `--nats: a NATS URL with a user or password: ` + creds},
		{"user info second", nil, []string{"DTOPERATOR_NATS=nats://a:1,tls://tok@b:2"}, `DTOPERATOR_NATS: a NATS URL with a user or password: ` + creds},
		{"no scheme", []string{"--nats", "127.0.0.1:4222"}, nil, `--nats: "127.0.0.1:4222": the scheme must be nats:// or tls://`},
		{"other scheme", []string{"--nats", "ws://a:4222"}, nil, `--nats: "ws://a:4222": the scheme must be nats:// or tls://`},
		{"no port", []string{"--nats", "nats://a"}, nil, `--nats: "nats://a": want host:port after the scheme`},
		{"bad port", []string{"--nats", "nats://a:http"}, nil, `--nats: "nats://a:http": port "http" is not a port number (1-65535)`},
		{"zero port", []string{"--nats", "nats://a:0"}, nil, `--nats: "nats://a:0": port "0" is not a port number (1-65535)`},
		{"bad host", []string{"--nats", "nats://a_b:1"}, nil, `--nats: "nats://a_b:1": want host:port after the scheme`},
		{"path", []string{"--nats", "nats://a:1/x"}, nil, `--nats: "nats://a:1/x": a NATS URL is a scheme, a host and a port, nothing after`},
		{"no host", []string{"--nats", "nats://"}, nil, `--nats: "nats://" is not a NATS URL`},
		{"only commas", []string{"--nats", " , "}, nil, `--nats: " , " names no NATS URL`},
		{"bad node", []string{"--node", "dt.1"}, nil, `--node: "dt.1" is not a node name (letters, digits, '-' and '_')`},
		{"long node", []string{"--node", strings.Repeat("n", 58)}, nil, `--node: "` + strings.Repeat("n", 58) + `" is longer than 57 bytes`},
		{"user without password", []string{"--nats", "nats://a:1", "--nats_user", "dt"}, nil,
			`--nats_user: set without "nats_password_file"; set both or neither`},
		{"password without user", nil, []string{"DTOPERATOR_NATS_PASSWORD_FILE=" + f},
			`DTOPERATOR_NATS_PASSWORD_FILE: set without "nats_user"; set both or neither`},
		{"cert without key", []string{"--nats_cert", f}, nil, `--nats_cert: set without "nats_key"; set both or neither`},
		{"key without cert", []string{"--nats_key", f}, nil, `--nats_key: set without "nats_cert"; set both or neither`},
		{"creds and user", []string{"--nats_creds", f, "--nats_user", "u", "--nats_password_file", f}, nil,
			`--nats_creds: set with "nats_user"; use a credentials file or a user and password, not both`},
		{"creds unreadable", []string{"--nats_creds", dir + "/nope"}, nil, `--nats_creds: open ` + dir + `/nope: no such file or directory`},
		{"password file unreadable", []string{"--nats_user", "u", "--nats_password_file", dir}, nil,
			`--nats_password_file: read ` + dir + `: is a directory`},
		{"ca unreadable", []string{"--nats_ca", dir + "/nope"}, nil, `--nats_ca: open ` + dir + `/nope`},
		{"key unreadable", []string{"--nats_cert", f, "--nats_key", dir + "/nope"}, nil, `--nats_key: open ` + dir + `/nope`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := loadConfig(tt.args, testEnv(dir, tt.env...))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error = %v\nwant %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error quotes the password: %v", err)
			}
		})
	}
}

// TestClusterWarning: cluster keys without "nats" do nothing; the server
// says so.
func TestClusterWarning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := writeFile(t, dir, "f", "x")
	_, warnings, err := loadConfig([]string{"--node", "a", "--nats_ca", f}, testEnv(dir))
	if err != nil {
		t.Fatal(err)
	}
	want := "node, nats_ca set without nats: ignored, this server is a single node"
	if len(warnings) < 1 || warnings[0] != want {
		t.Errorf("warnings %q, want %q first", warnings, want)
	}
}

// TestClusterConfig: the cluster.Config of the settings, the password read
// from its file (trailing newline trimmed) and in no log line.
func TestClusterConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "pa ss\r\n")
	cfg := Config{NATS: "nats://a:1,tls://b:2", Node: "dt1", NATSUser: "dt", NATSPasswordFile: pw,
		NATSCA: "ca.pem", NATSCert: "c.pem", NATSKey: "k.pem"}
	cc, err := clusterConfig(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if cc.URLs != cfg.NATS || cc.Name != "dt1" || cc.User != "dt" || cc.Password != "pa ss" ||
		cc.CAFile != "ca.pem" || cc.CertFile != "c.pem" || cc.KeyFile != "k.pem" || cc.CredsFile != "" {
		t.Errorf("cluster.Config %+v", cc)
	}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("starting", "config", cfg)
	if strings.Contains(b.String(), "pa ss") || !strings.Contains(b.String(), "config.nats_password_file="+pw) {
		t.Errorf("start-up line: %s", b.String())
	}
	for name, content := range map[string]string{"empty": "\n", "missing": ""} {
		c := cfg
		c.NATSPasswordFile = filepath.Join(dir, name)
		if name == "empty" {
			writeFile(t, dir, name, content)
		}
		if _, err := clusterConfig(c, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("%s password file: no error", name)
		}
	}
}
