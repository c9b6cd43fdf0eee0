package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dtcall/dtcall/internal/reuseport"
)

// TestSharePorts: each start takes the byte after the last one and
// writes its own; a missing or broken file counts as 0; 255 wraps to 1;
// without reuse_port nothing is read or written.
func TestSharePorts(t *testing.T) {
	t.Parallel()
	if !reuseport.Supported {
		t.Skip("reuse_port is Linux only")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := filepath.Join(t.TempDir(), "data")
	cfg := Config{Data: dir}
	if p, err := sharePorts(cfg, log); p != nil || err != nil || p.cidGenerator() != nil {
		t.Fatalf("reuse_port off: %v, %v; want nil, nil", p, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("reuse_port off made the data folder: %v", err)
	}
	cfg.ReusePort = true
	file := filepath.Join(dir, steeringFile)
	for _, tt := range []struct {
		before string // "" = no file
		want   byte
	}{{"", 1}, {"1\n", 2}, {"2\n", 3}, {"255\n", 1}, {"garbage", 1}, {"300", 1}} {
		if tt.before != "" {
			if err := os.WriteFile(file, []byte(tt.before), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p, err := sharePorts(cfg, log)
		if err != nil || p.steer != tt.want {
			t.Errorf("file %q: steering %v, %v; want %d", tt.before, p, err, tt.want)
			continue
		}
		if b, _ := os.ReadFile(file); string(b) != strconv.Itoa(int(tt.want))+"\n" {
			t.Errorf("file %q: now holds %q, want %d", tt.before, b, tt.want)
		}
		if g := p.cidGenerator().(reuseport.CIDGenerator); g.Byte != tt.want {
			t.Errorf("generator byte %d, want %d", g.Byte, tt.want)
		}
	}
	if _, err := sharePorts(Config{ReusePort: true}, log); err == nil {
		t.Error("reuse_port without a data folder: no error")
	}
}

// TestBoolSetting: the spellings of true and false.
func TestBoolSetting(t *testing.T) {
	t.Parallel()
	s, _ := settingFor("reuse_port")
	for _, tt := range []struct {
		in   any
		want bool
		ok   bool
	}{
		{true, true, true}, {false, false, true}, {"true", true, true}, {"Yes", true, true}, {"on", true, true},
		{"1", true, true}, {"false", false, true}, {"NO", false, true}, {"off", false, true}, {"0", false, true},
		{"", false, false}, {"maybe", false, false}, {1, false, false},
	} {
		c := Config{ReusePort: !tt.want}
		err := s.set(&c, tt.in)
		if (err == nil) != tt.ok || tt.ok && c.ReusePort != tt.want {
			t.Errorf("set(%#v): ReusePort %v, err %v; want %v, ok %v", tt.in, c.ReusePort, err, tt.want, tt.ok)
		}
	}
	env := testEnv(t.TempDir())
	for _, args := range [][]string{{"--reuse_port"}, {"--reuse_port=true"}, {"--reuse_port=yes"}} {
		cfg, _, err := loadConfigTo(io.Discard, args, env)
		if err != nil || !cfg.ReusePort {
			t.Errorf("%q: ReusePort %v, %v; want true", args, cfg.ReusePort, err)
		}
	}
	if cfg, _, err := loadConfigTo(io.Discard, nil, env); err != nil || cfg.ReusePort {
		t.Errorf("default: ReusePort %v, %v; want false", cfg.ReusePort, err)
	}
}
