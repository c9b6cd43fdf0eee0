package accounts

import (
	"bytes"
	"strings"
	"testing"
)

func TestVerifySamples(t *testing.T) {
	for _, s := range samples {
		h, err := ParseMCF(s.hash)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if want := (Params{LogN: 14, R: 8, P: 16}); h.Params != want || len(h.Salt) != 16 {
			t.Fatalf("%s: params %+v, salt %d bytes; want %+v, 16 bytes", s.name, h.Params, len(h.Salt), want)
		}
		t.Run(s.name+"/right", func(t *testing.T) {
			t.Parallel()
			if !h.Verify(s.password) {
				t.Errorf("Verify(right password) = false")
			}
		})
		t.Run(s.name+"/wrong", func(t *testing.T) {
			if testing.Short() {
				t.Skip("a second of CPU each; skipped in -short mode")
			}
			t.Parallel()
			if h.Verify(s.password + "x") {
				t.Errorf("Verify(wrong password) = true")
			}
		})
	}
}

func TestParseMCFRoundTrip(t *testing.T) {
	for _, s := range samples {
		h, err := ParseMCF(s.hash)
		if err != nil {
			t.Fatal(err)
		}
		if got := h.String(); got != s.hash {
			t.Errorf("String() = %q, want %q", got, s.hash)
		}
	}
}

func TestNewHash(t *testing.T) {
	s := mustHash(t, "open sesame")
	h, err := ParseMCF(s)
	if err != nil {
		t.Fatalf("ParseMCF(NewHash(...)): %v", err)
	}
	if h.Params != cheap || len(h.Salt) != 16 || len(h.Key) != 64 {
		t.Errorf("got params %+v, salt %d bytes, key %d bytes", h.Params, len(h.Salt), len(h.Key))
	}
	if h.String() != s {
		t.Errorf("String() = %q, want %q", h.String(), s)
	}
	if !h.Verify("open sesame") {
		t.Error("Verify(right password) = false")
	}
	for _, pw := range []string{"", "open sesame ", "Open sesame"} {
		if h.Verify(pw) {
			t.Errorf("Verify(%q) = true", pw)
		}
	}
	if s2 := mustHash(t, "open sesame"); s2 == s {
		t.Error("two hashes of one password are equal; salt not random")
	}
}

func TestNewHashBadParams(t *testing.T) {
	for _, p := range []Params{
		{}, {LogN: 25, R: 1, P: 1}, {LogN: 4, R: 0, P: 1}, {LogN: 4, R: 1, P: 0},
		{LogN: 4, R: 256, P: 1}, {LogN: 4, R: 1, P: 256}, {LogN: 4, R: 1 << 20, P: 1 << 10},
		{LogN: 24, R: 128, P: 1},
	} {
		if s, err := NewHash("pw", p); err == nil {
			t.Errorf("NewHash(%+v) = %q, want error", p, s)
		}
	}
}

func TestVerifyInvalidHash(t *testing.T) {
	good, err := ParseMCF(mustHash(t, "pw"))
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]Hash{
		"zero":      {},
		"short key": {Params: cheap, Salt: good.Salt, Key: good.Key[:32]},
		"no salt":   {Params: cheap, Key: good.Key},
		"huge":      {Params: Params{LogN: 24, R: 255, P: 1}, Salt: good.Salt, Key: good.Key},
	} {
		if h.Verify("pw") {
			t.Errorf("%s: Verify = true", name)
		}
	}
}

func TestParseMCFErrors(t *testing.T) {
	const (
		salt = "gSWZo3ioKoQ5I8kCbc8A9A=="
		key  = "v3p1UXAOn9siRjdpgfxb+cDZtqwVobgQ8wZcDKZzT7WxsufEAv8EuhWA/xxAIzLJIp1HaRwbWm28Dz46nSxvZA=="
	)
	tests := []struct{ in, want string }{
		{"", "does not start with $s1$"},
		{"s1$0e0810$" + salt + "$" + key, "does not start with $s1$"},
		{"$s2$0e0810$" + salt + "$" + key, "does not start with $s1$"},
		{"$S1$0e0810$" + salt + "$" + key, "does not start with $s1$"},
		{"$s1$0e0810$" + salt, "2 fields after $s1$, want 3"},
		{"$s1$0e0810$" + salt + "$" + key + "$", "4 fields after $s1$, want 3"},
		{"$s1$0e0810$" + salt + "$" + key + "$x", "4 fields after $s1$, want 3"},
		{"$s1$$" + salt + "$" + key, "parameters are not six lowercase hex digits"},
		{"$s1$0e081$" + salt + "$" + key, "parameters are not six lowercase hex digits"},
		{"$s1$0e08100$" + salt + "$" + key, "parameters are not six lowercase hex digits"},
		{"$s1$0E0810$" + salt + "$" + key, "parameters are not six lowercase hex digits"},
		{"$s1$0e081g$" + salt + "$" + key, "parameters are not six lowercase hex digits"},
		{"$s1$+e0810$" + salt + "$" + key, "parameters are not six lowercase hex digits"},
		{"$s1$ e0810$" + salt + "$" + key, "parameters are not six lowercase hex digits"},
		{"$s1$000810$" + salt + "$" + key, "log2 N is 0, want 1..24"},
		{"$s1$190810$" + salt + "$" + key, "log2 N is 25, want 1..24"},
		{"$s1$ff0810$" + salt + "$" + key, "log2 N is 255, want 1..24"},
		{"$s1$0e0010$" + salt + "$" + key, "r is 0, want at least 1"},
		{"$s1$0e0800$" + salt + "$" + key, "p is 0, want at least 1"},
		{"$s1$170201$" + salt + "$" + key, "memory 128*r*N is 2048 MiB, above the 1 GiB limit"},
		{"$s1$180101$" + salt + "$" + key, "memory 128*r*N is 2048 MiB, above the 1 GiB limit"},
		{"$s1$14ff01$" + salt + "$" + key, "memory 128*r*N is 32640 MiB, above the 1 GiB limit"},
		{"$s1$0e0810$$" + key, "salt is 0 bytes, want 1..64"},
		{"$s1$0e0810$" + strings.Repeat("AAAA", 22) + "$" + key, "salt is 66 bytes, want 1..64"},
		{"$s1$0e0810$gSWZo3ioKoQ5I8kCbc8A9A$" + key, "salt: not standard base64"},
		{"$s1$0e0810$gSWZo3ioKoQ5I8kCbc8A9A=$" + key, "salt: not standard base64"},
		{"$s1$0e0810$gSWZo3ioKoQ5I8kCbc8A9A==" + "==$" + key, "salt: not standard base64"},
		{"$s1$0e0810$gSWZo3ioKoQ5I8kCbc8A9B==$" + key, "salt: not canonical standard base64"},
		{"$s1$0e0810$gSWZo3ioKoQ5I8kC\nbc8A9A==$" + key, "salt: not canonical standard base64"},
		{"$s1$0e0810$gSWZo3ioKoQ5I8kCbc8A9A==\r$" + key, "salt: not canonical standard base64"},
		{"$s1$0e0810$gSWZo3ioKoQ5I8kC-c8A9A==$" + key, "salt: not standard base64"},
		{"$s1$0e0810$gSWZo3ioKoQ5I8kC_c8A9A==$" + key, "salt: not standard base64"},
		{"$s1$0e0810$ gSWZo3ioKoQ5I8kCbc8A9A==$" + key, "salt: not standard base64"},
		{"$s1$0e0810$" + salt + "$", "key is 0 bytes, want 64"},
		{"$s1$0e0810$" + salt + "$" + salt, "key is 16 bytes, want 64"},
		{"$s1$0e0810$" + salt + "$" + key[:len(key)-4], "key is 63 bytes, want 64"},
		{"$s1$0e0810$" + salt + "$" + key + "AAAA", "key: not standard base64"},
		{"$s1$0e0810$" + salt + "$" + key + salt, "key: not standard base64"},
		{"$s1$0e0810$" + salt + "$" + key[:84] + salt, "key is 79 bytes, want 64"},
		{"$s1$0e0810$" + salt + "$" + strings.TrimRight(key, "="), "key: not standard base64"},
		{"$s1$0e0810$" + salt + "$" + key + " ", "key: not standard base64"},
		{"$s1$0e0810$" + salt + "$" + key + "\n", "key: not canonical standard base64"},
		{" $s1$0e0810$" + salt + "$" + key, "does not start with $s1$"},
	}
	for _, tt := range tests {
		h, err := ParseMCF(tt.in)
		if err == nil {
			t.Errorf("ParseMCF(%q) = %v, want error %q", tt.in, h, tt.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), "bad hash: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseMCF(%q) error %q, want \"bad hash: ...%s...\"", tt.in, err, tt.want)
		}
		if strings.Contains(err.Error(), salt) || strings.Contains(err.Error(), key[:20]) {
			t.Errorf("ParseMCF(%q) error %q repeats the hash", tt.in, err)
		}
	}
}

// TestParseMCFLimits checks the edges of the parameter ranges.
func TestParseMCFLimits(t *testing.T) {
	salt, key := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 64)
	for _, p := range []Params{
		{LogN: 1, R: 1, P: 1},
		{LogN: 23, R: 1, P: 1}, // exactly 1 GiB
		{LogN: 20, R: 8, P: 1}, // exactly 1 GiB
		{LogN: 14, R: 255, P: 255},
	} {
		s := Hash{Params: p, Salt: salt, Key: key}.String()
		h, err := ParseMCF(s)
		if err != nil {
			t.Errorf("ParseMCF(%q): %v", s, err)
		} else if h.Params != p {
			t.Errorf("ParseMCF(%q) params %+v, want %+v", s, h.Params, p)
		}
	}
}

func BenchmarkVerifySample(b *testing.B) {
	h, err := ParseMCF(samples[0].hash)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !h.Verify(samples[0].password) {
			b.Fatal("Verify = false")
		}
	}
}

func BenchmarkVerifyDefault(b *testing.B) {
	s, err := NewHash("unlucky", DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	h, err := ParseMCF(s)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !h.Verify("unlucky") {
			b.Fatal("Verify = false")
		}
	}
}
