//go:build linux

// Package netnstest gives a test a network path it can cut: two network
// namespaces of the test's own, joined by a veth pair. Sockets opened in
// one reach the other over the pair; Cut takes the link down, and from
// then on every packet is lost without a word, as when a phone's network
// vanishes. Loopback cannot do that: its packets never get lost, so a
// peer's kernel always acknowledges.
//
// It needs root and iproute2's ip. Without them the test is skipped,
// except under CI=true, where it fails.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// The two ends' addresses (TEST-NET-1, RFC 5737): nothing outside the
// test's namespaces ever sees them.
const (
	ServerIP = "192.0.2.1"
	ClientIP = "192.0.2.2"
)

// Path is a veth link between a server namespace and a client namespace.
type Path struct {
	server, client string // the namespaces' names (ip netns)
}

var made atomic.Int64

// New makes the two namespaces and the link, up, removed at the end of t.
func New(t testing.TB) *Path {
	t.Helper()
	if err := usable(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("network namespaces are needed here: %v", err)
		}
		t.Skipf("network namespaces unavailable: %v", err)
	}
	n := made.Add(1)
	p := &Path{
		server: fmt.Sprintf("dtcall-test-%d-%d-s", os.Getpid(), n),
		client: fmt.Sprintf("dtcall-test-%d-%d-c", os.Getpid(), n),
	}
	for _, ns := range []string{p.server, p.client} {
		ip(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	ip(t, "link", "add", "veth0", "netns", p.server, "type", "veth", "peer", "name", "veth0", "netns", p.client)
	for ns, addr := range map[string]string{p.server: ServerIP, p.client: ClientIP} {
		ip(t, "-n", ns, "addr", "add", addr+"/24", "dev", "veth0")
		ip(t, "-n", ns, "link", "set", "veth0", "up")
		ip(t, "-n", ns, "link", "set", "lo", "up")
	}
	return p
}

// usable says why namespaces cannot be made here, if they cannot.
func usable() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("no ip command (Debian: apt-get install iproute2): %w", err)
	}
	return nil
}

// ip runs the ip command and fails t if it fails.
func ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// InServer runs f on a thread in the server namespace: the sockets f
// opens (listeners, say) live there, whichever goroutine uses them later.
func (p *Path) InServer(f func()) error { return inNamespace(p.server, f) }

// InClient runs f on a thread in the client namespace.
func (p *Path) InClient(f func()) error { return inNamespace(p.client, f) }

// Cut takes the server's end of the link down: packets between the two
// namespaces are lost from now on, and nobody is told.
func (p *Path) Cut(t testing.TB) {
	t.Helper()
	ip(t, "-n", p.server, "link", "set", "veth0", "down")
}

// ServerBytesReceived is what the server namespace's established TCP
// connections on local port port have received so far, by the kernel's
// count (ss's bytes_received), summed.
func (p *Path) ServerBytesReceived(t testing.TB, port int) int64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", p.server,
		"ss", "-tinH", "state", "established", "sport", "=", ":"+strconv.Itoa(port)).CombinedOutput()
	if err != nil {
		t.Fatalf("ss in %s: %v: %s", p.server, err, out)
	}
	var sum int64
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "bytes_received:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("ss: %q: %v", f, err)
			}
			sum += n
		}
	}
	return sum
}

// inNamespace runs f on a goroutine locked to its OS thread, moved into
// the namespace ns. The goroutine ends without unlocking, so the runtime
// ends the thread instead of reusing it in the wrong namespace.
func inNamespace(ns string, f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open namespace %s: %w", ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		f()
		errc <- nil
	}()
	return <-errc
}
