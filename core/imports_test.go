package core

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoSocketImports keeps the core independent of the fronts: it must not
// import (even indirectly) a socket, TLS or QUIC package, koanf, or a front.
// net/netip values are fine.
func TestNoSocketImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/dtcall/dtcall/core").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch {
		case pkg == "net", pkg == "crypto/tls",
			strings.HasPrefix(pkg, "github.com/quic-go/"),
			strings.HasPrefix(pkg, "github.com/knadh/koanf"),
			strings.HasPrefix(pkg, "github.com/dtcall/dtcall/transport/"),
			strings.HasPrefix(pkg, "github.com/dtcall/dtcall/cmd/"):
			t.Errorf("core depends on %s", pkg)
		}
	}
}
