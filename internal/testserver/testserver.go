// Package testserver runs a whole dtcall server in-process for tests: one
// core with the legacy TLS pair and the QUIC front on 127.0.0.1, with test
// accounts and a throwaway certificate (or one of the test's).
package testserver

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/dtcall/dtcall/accounts"
	"github.com/dtcall/dtcall/cluster"
	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/transport/quic"
	"github.com/dtcall/dtcall/transport/tcp"
)

// Users are the test accounts alice, bob, carol and dave, each with
// password "pw-<name>", hashed with cheap scrypt parameters (the server
// reads the parameters from each hash).
var Users = func() []accounts.Entry {
	var es []accounts.Entry
	for _, name := range []string{"alice", "bob", "carol", "dave"} {
		mcf, err := accounts.NewHash("pw-"+name, accounts.Params{LogN: 4, R: 8, P: 1})
		if err != nil {
			panic(err)
		}
		h, err := accounts.ParseMCF(mcf)
		if err != nil {
			panic(err)
		}
		es = append(es, accounts.Entry{Name: name, Hash: h})
	}
	return es
}()

// Server is a running server.
type Server struct {
	Core   *core.Server
	Legacy *tcp.Server
	QUIC   *quic.Server
	Cert   testcert.Cert
	Node   *cluster.Node // with Config.NATS: this server's member of the cluster

	CommandAddr, MediaAddr           string // legacy TCP ports, "127.0.0.1:port"
	QUICAddr                         *net.UDPAddr
	CommandPort, MediaPort, QUICPort int
}

// Config holds the settings of each layer; zero values are the defaults.
type Config struct {
	Core   core.Config
	Legacy tcp.Config // CertFile and KeyFile are filled in
	QUIC   quic.Config
	// Cert is the server's certificate and key, for both fronts; zero:
	// testcert.Write's self-signed one.
	Cert testcert.Cert
	// Accounts are served besides Users.
	Accounts []accounts.Entry
	// NATS, if set, joins the server to the cluster of that NATS server
	// (cluster/natstest) as node Name; Cluster tunes the rest.
	NATS    string
	Name    string
	Cluster cluster.Config
	// Host is the address the listeners bind; "" is 127.0.0.1. ListenIn,
	// if set, opens them: it runs the function it is given in a network
	// namespace of the test's (internal/netnstest).
	Host     string
	ListenIn func(open func()) error
}

// Logger discards logs, or shows them all with go test -v.
func Logger() *slog.Logger {
	if testing.Testing() && testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Start runs a server until the end of t. Its cleanup does not wait for
// calls to end.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s := &Server{Cert: cfg.Cert}
	if s.Cert.CertFile == "" {
		s.Cert = testcert.Write(t)
	}
	log := Logger()
	if cfg.NATS != "" {
		cc := cfg.Cluster
		cc.URLs, cc.Name, cc.Log = cfg.NATS, cfg.Name, log
		node, err := cluster.New(cc)
		if err != nil {
			t.Fatal(err)
		}
		s.Node = node
		cfg.Core.Directory, cfg.Core.Peers = node, node
	}
	s.Core = core.New(cfg.Core, accounts.NewStore(append(cfg.Accounts, Users...), 0), log)
	if s.Node != nil {
		if err := s.Node.Start(s.Core); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Legacy.CertFile, cfg.Legacy.KeyFile = s.Cert.CertFile, s.Cert.KeyFile
	cfg.QUIC.CertFile, cfg.QUIC.KeyFile = s.Cert.CertFile, s.Cert.KeyFile
	var err error
	if s.Legacy, err = tcp.New(cfg.Legacy, s.Core, log); err != nil {
		t.Fatal(err)
	}
	if s.QUIC, err = quic.New(cfg.QUIC, s.Core, log); err != nil {
		t.Fatal(err)
	}
	host := cmp.Or(cfg.Host, "127.0.0.1")
	listenIn := cfg.ListenIn
	if listenIn == nil {
		listenIn = func(open func()) error { open(); return nil }
	}
	var cmdLn, mediaLn net.Listener
	var pc *net.UDPConn
	var lerr error
	err = listenIn(func() {
		cmdLn, mediaLn, pc, lerr = listen(host)
	})
	if err = cmp.Or(err, lerr); err != nil {
		t.Fatal(err)
	}
	s.CommandAddr, s.MediaAddr = cmdLn.Addr().String(), mediaLn.Addr().String()
	s.CommandPort = cmdLn.Addr().(*net.TCPAddr).Port
	s.MediaPort = mediaLn.Addr().(*net.TCPAddr).Port
	s.QUICAddr = pc.LocalAddr().(*net.UDPAddr)
	s.QUICPort = s.QUICAddr.Port
	var wg sync.WaitGroup
	wg.Go(func() { s.Legacy.ServeCommand(cmdLn) })
	wg.Go(func() { s.Legacy.ServeMedia(mediaLn) })
	wg.Go(func() { s.QUIC.Serve(pc) })
	t.Cleanup(func() {
		s.Legacy.CloseListeners()
		s.QUIC.CloseListeners()
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // don't wait for calls to end
		s.Core.Shutdown(ctx)
		s.Legacy.Close()
		s.QUIC.Close()
		wg.Wait()
		if s.Node != nil {
			s.Node.Close()
		}
	})
	return s
}

// Kill ends the server as a crash would: its cluster node vanishes
// without a word (the others notice the silence), and its listeners and
// every connection close at once. The test's cleanup releases the rest.
func (s *Server) Kill() {
	if s.Node != nil {
		s.Node.Abort()
	}
	s.Legacy.Close()
	s.QUIC.Close()
}

// listen opens the two legacy listeners and the QUIC socket on host, on
// ports the system picks.
func listen(host string) (cmd, media net.Listener, pc *net.UDPConn, err error) {
	addr := net.JoinHostPort(host, "0")
	if cmd, err = net.Listen("tcp", addr); err != nil {
		return nil, nil, nil, err
	}
	if media, err = net.Listen("tcp", addr); err != nil {
		cmd.Close()
		return nil, nil, nil, err
	}
	if pc, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)}); err != nil {
		cmd.Close()
		media.Close()
		return nil, nil, nil, err
	}
	return cmd, media, pc, nil
}
