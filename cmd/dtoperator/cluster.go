package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/dtcall/dtcall/cluster"
)

// The cluster settings: "nats" joins this server to the cluster of those
// NATS servers (docs/CLUSTER.md), as node "node"; the nats_* keys say how
// to authenticate. Config holds only paths: the password is read from
// nats_password_file at start (clusterConfig), so that Config.LogValue can
// log the whole configuration.

// maxNodeName is the longest node name: cluster node ids are the name, "-"
// and 6 hex digits, at most 64 bytes.
const maxNodeName = 57

// setNATS stores a comma-separated list of NATS URLs, each nats://host:port
// or tls://host:port, normalized ("nats://a:4222,tls://b:4222"); "" means
// a single node. A URL with user info is refused: Config is logged whole.
func setNATS(c *Config, v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("%s is not a string", show(v))
	}
	var out []string
	for raw := range strings.SplitSeq(s, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := checkNATSURL(raw)
		if err != nil {
			return err
		}
		out = append(out, u)
	}
	if len(out) == 0 && strings.TrimSpace(s) != "" {
		return fmt.Errorf("%s names no NATS URL", show(v))
	}
	c.NATS = strings.Join(out, ",")
	return nil
}

// checkNATSURL checks one URL of "nats". Its messages never quote a URL
// with user info.
func checkNATSURL(raw string) (string, error) {
	if i := strings.Index(raw, "://"); i >= 0 && strings.Contains(raw[i+3:], "@") {
		return "", errors.New("a NATS URL with a user or password: put credentials in nats_creds " +
			"or nats_user and nats_password_file")
	}
	scheme, rest, _ := strings.Cut(raw, "://")
	if scheme != "nats" && scheme != "tls" {
		return "", fmt.Errorf("%q: the scheme must be nats:// or tls://", raw)
	}
	rest = strings.TrimSuffix(rest, "/")
	if rest == "" {
		return "", fmt.Errorf(`%q is not a NATS URL such as "nats://10.0.0.5:4222"`, raw)
	}
	if strings.ContainsAny(rest, "/?#") {
		return "", fmt.Errorf("%q: a NATS URL is a scheme, a host and a port, nothing after", raw)
	}
	host, port, err := net.SplitHostPort(rest)
	n, isNum := toInt(port)
	switch {
	case err != nil || host == "" || !validHost(host):
		return "", fmt.Errorf("%q: want host:port after the scheme", raw)
	case !isNum || n < 1 || n > 65535:
		return "", fmt.Errorf("%q: port %q is not a port number (1-65535)", raw, port)
	}
	return scheme + "://" + rest, nil
}

// validHost reports whether host is an IP address or a host name.
func validHost(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil || validHostName(host)
}

// setNode stores a node name: letters, digits, '-' and '_', at most
// maxNodeName bytes, or "" for the host name.
func setNode(c *Config, v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("%s is not a string", show(v))
	}
	if len(s) > maxNodeName {
		return fmt.Errorf("%s is longer than %d bytes", show(v), maxNodeName)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("%s is not a node name (letters, digits, '-' and '_')", show(v))
		}
	}
	c.Node = s
	return nil
}

// checkCluster validates the nats_* keys together: user and password file
// both or neither, certificate and key both or neither, not a credentials
// file and a user at once, and each file readable.
func (l *loader) checkCluster(c Config) error {
	if err := l.checkPairs(
		keyPair{"nats_user", "nats_password_file", c.NATSUser, c.NATSPasswordFile},
		keyPair{"nats_cert", "nats_key", c.NATSCert, c.NATSKey},
	); err != nil {
		return err
	}
	if c.NATSCreds != "" && c.NATSUser != "" {
		return fmt.Errorf(`%s: set with "nats_user"; use a credentials file or a user and password, not both`,
			l.sources["nats_creds"])
	}
	files := []struct{ key, path string }{
		{"nats_creds", c.NATSCreds}, {"nats_password_file", c.NATSPasswordFile},
		{"nats_ca", c.NATSCA}, {"nats_cert", c.NATSCert}, {"nats_key", c.NATSKey},
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

// clusterWarnings names the nats_* and node keys set while "nats" is not:
// they do nothing on a single node.
func (c Config) clusterWarnings() []string {
	if c.NATS != "" {
		return nil
	}
	var keys []string
	for _, s := range settings {
		if (s.key == "node" || strings.HasPrefix(s.key, "nats_")) && s.get(&c) != "" {
			keys = append(keys, s.key)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s set without nats: ignored, this server is a single node", strings.Join(keys, ", "))}
}

// clusterConfig is the cluster.Config of cfg, with the password read from
// nats_password_file (its trailing newline trimmed).
func clusterConfig(cfg Config, log *slog.Logger) (cluster.Config, error) {
	cc := cluster.Config{
		URLs: cfg.NATS, Name: cfg.Node, CredsFile: cfg.NATSCreds, User: cfg.NATSUser,
		CAFile: cfg.NATSCA, CertFile: cfg.NATSCert, KeyFile: cfg.NATSKey, Log: log,
	}
	if cfg.NATSPasswordFile != "" {
		b, err := os.ReadFile(cfg.NATSPasswordFile)
		if err != nil {
			return cluster.Config{}, fmt.Errorf("nats_password_file: %w", err)
		}
		cc.Password = strings.TrimRight(string(b), "\r\n")
		if cc.Password == "" {
			return cluster.Config{}, fmt.Errorf("nats_password_file %s is empty", cfg.NATSPasswordFile)
		}
	}
	return cc, nil
}

// joinCluster makes this server's cluster node when "nats" is set (nil
// otherwise). The node connects in the background; it serves nothing
// until Start.
func joinCluster(cfg Config, log *slog.Logger) (*cluster.Node, error) {
	if cfg.NATS == "" {
		return nil, nil
	}
	cc, err := clusterConfig(cfg, log.With(attrTag, "cluster", attrDir, "system"))
	if err != nil {
		return nil, err
	}
	node, err := cluster.New(cc)
	if err != nil {
		return nil, err
	}
	return node, nil
}
