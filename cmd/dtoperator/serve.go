package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dtcall/dtcall/accounts"
	"github.com/dtcall/dtcall/accounts/autoban"
	"github.com/dtcall/dtcall/cluster"
	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/internal/memtrim"
	"github.com/dtcall/dtcall/transport/quic"
	"github.com/dtcall/dtcall/transport/tcp"
)

// server is a running dtoperator: its parts, and what a reload needs.
type server struct {
	args, environ []string // the command line and environment, to reload the config
	log           *slog.Logger
	level         *slog.LevelVar
	cfg           Config // the last good configuration; owned by serve

	store   *accounts.Store
	bans    *autoban.Bans
	calls   *core.Server
	node    *cluster.Node // nil without "nats": a single node
	legacy  *tcp.Server
	modern  *quic.Server
	admin   *adminServer // nil without "metrics"
	reloads reloadCounts
	ready   atomic.Bool // both fronts accept and the server is not draining
}

// serve runs the server until SIGTERM or SIGINT arrives on sigs, reloading
// on SIGHUP; then it drains (see drain) and returns. Everything that can
// fail is set up before anything is served.
func serve(sigs <-chan os.Signal, s *server) error {
	cfg, log := s.cfg, s.log
	log.Info("starting dtoperator", "config", cfg, attrTag, "system", attrDir, "system")
	users, err := loadUsers(cfg, log)
	if err != nil {
		return err
	}
	certs, err := certificates(cfg, log)
	if err != nil {
		return err
	}
	s.store = accounts.NewStore(users, 0)
	s.store.SetLimits(accounts.Limits{Queue: cfg.LoginQueue, PerSource: cfg.LoginQueuePerSource, Wait: cfg.LoginWait})
	s.bans = autoban.New(autoban.Config{
		Attempts: cfg.AutobanAttempts, Window: cfg.AutobanWindow, Time: cfg.AutobanTime,
		Exempt: exemptPrefixes(cfg.AutobanExempt),
	}, log)
	// The node joins before the core exists (the core's Directory and
	// Peers), starts right after it, and leaves after the drain: it stays
	// in the cluster while cross-node calls drain.
	if s.node, err = joinCluster(cfg, log); err != nil {
		return err
	}
	if s.node != nil {
		defer s.node.Close()
	}
	coreCfg := core.Config{
		Window: cfg.Window, CommandBurst: cfg.CommandBurst, CommandRate: cfg.CommandRate, Bans: s.bans,
	}
	if s.node != nil {
		coreCfg.Directory, coreCfg.Peers = s.node, s.node
	}
	s.calls = core.New(coreCfg, s.store, log)
	if w := newCheckWorker(log, 0); w != nil {
		defer w.Close() // after the fronts and the core are done with checks
		s.store.SetWorker(func() bool { return s.calls.CallsInProgress() > 0 }, w)
	}
	if s.node != nil {
		if err := s.node.Start(s.calls); err != nil {
			return err
		}
	}
	legacy := certs.legacy(cfg)
	legacy.MaxHandshakesPerSource, legacy.MaxHandshakes = cfg.TLSHandshakesPerSource, cfg.TLSHandshakesMax
	legacy.Gate = s.bans // a banned source is closed right after accept, before TLS
	if s.legacy, err = tcp.New(legacy, s.calls, log); err != nil {
		return err
	}
	defer s.legacy.Close()
	shared, err := sharePorts(cfg, log) // nil without reuse_port
	if err != nil {
		return err
	}
	if s.modern, err = quic.New(quic.Config{
		CertFile: certs.modernCert, KeyFile: certs.modernKey,
		KeepAlive: cfg.KeepAlive, IdleTimeout: cfg.Idle,
		MaxConnsPerSource: cfg.QUICMaxConnsPerSource, MaxConns: cfg.QUICMaxConns,
		Gate:                  s.bans, // a banned source is refused before its handshake
		ConnectionIDGenerator: shared.cidGenerator(),
	}, s.calls, log); err != nil {
		return err
	}
	defer s.modern.Close()
	trimmer := memtrim.New(memtrim.Config{}, log)
	trimCtx, stopTrimming := context.WithCancel(context.Background())
	defer stopTrimming()
	go trimmer.Run(trimCtx)
	if cfg.Metrics != "" {
		m := &metricsCollector{core: s.calls, legacy: s.legacy, modern: s.modern, store: s.store,
			bans: s.bans, reloads: &s.reloads, node: s.node, trimmer: trimmer}
		if s.admin, err = startAdmin(cfg.Metrics, newRegistry(m), s.readiness, log); err != nil {
			return err
		}
		defer s.admin.close()
	}
	cmdLn, mediaLn, udp, err := listenAll(cfg, shared)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	fronts := []struct {
		name  string
		serve func() error
	}{
		{"legacy command port", func() error { return s.legacy.ServeCommand(cmdLn) }},
		{"legacy media port", func() error { return s.legacy.ServeMedia(mediaLn) }},
		{"QUIC port", func() error { return s.modern.Serve(udp) }},
	}
	failed := make(chan error, len(fronts)) // a front stopped by itself: shut down as on SIGTERM
	for _, f := range fronts {
		wg.Go(func() {
			if err := f.serve(); err != nil {
				log.Error(f.name+" stopped; shutting down", attrTag, "system", attrDir, "error", "err", err)
				failed <- fmt.Errorf("%w: %s: %w", errFrontFailed, f.name, err)
			}
		})
	}
	s.ready.Store(true)
	ready := []any{attrTag, "system", attrDir, "system",
		"command", cmdLn.Addr().String(), "media", mediaLn.Addr().String(),
		"quic", udp.LocalAddr().String(), "users", s.store.Len(), "dhe", s.legacy.DHEAvailable()}
	if s.admin != nil {
		ready = append(ready, "metrics", s.admin.addr())
	}
	if s.node != nil {
		ready = append(ready, "node", s.node.Node(), "nats", cfg.NATS)
	}
	fds := fdLimit()
	ready = append(ready, "fd_limit", fds)
	log.Info("dtoperator ready", ready...)
	if fds > 0 && fds < minFDs {
		log.Warn(fmt.Sprintf("open file limit %d is low: each connection takes one; raise it (systemd: LimitNOFILE=65536)", fds),
			attrTag, "system", attrDir, "system")
	}

	stopStats := make(chan struct{})
	wg.Go(func() { reportStats(stopStats, log, s.calls, s.modern) })
	var stopErr error
wait:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				s.reload()
				continue
			}
			log.Info("shutting down on "+sig.String(), attrTag, "system", attrDir, "system")
		case stopErr = <-failed:
		}
		break wait
	}
	close(stopStats)
	s.drain(sigs)
	wg.Wait()
	if s.node != nil {
		s.node.Close() // after the drain: the cluster hears of this node's calls to the end
	}
	log.Info("dtoperator stopped", attrTag, "system", attrDir, "system")
	return stopErr
}

// errFrontFailed is serve's error after a front stopped by itself (its
// socket failed) and the server shut down; it is logged already.
var errFrontFailed = errors.New("a front failed")

// minFDs is the open file limit below which the server warns at start.
const minFDs = 4096

// readiness is /readyz's answer.
func (s *server) readiness() (bool, string) {
	switch {
	case s.calls.Draining():
		return false, "draining"
	case !s.ready.Load():
		return false, "starting"
	}
	return true, "ready"
}

// drain is the lame-duck shutdown: /readyz turns 503 and the listeners
// close (new connections are refused); sessions not in a call close at
// once; calls in progress go on until they end or the "drain" time runs
// out (they then get a drop notice); a second SIGTERM or SIGINT ends them
// at once. Then every connection closes and the fronts stop.
func (s *server) drain(sigs <-chan os.Signal) {
	s.ready.Store(false)
	s.log.Info("draining: no new connections; calls in progress may go on", attrTag, "system", attrDir, "system",
		"for at most", s.cfg.Drain, "calls", s.calls.Stats().ActiveCalls)
	s.legacy.CloseListeners()
	s.modern.CloseListeners()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Drain)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { // a second signal ends the drain
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					s.log.Warn("SIGHUP while draining: ignored", attrTag, "system", attrDir, "system")
					continue
				}
				s.log.Warn("second "+sig.String()+": ending the calls now", attrTag, "system", attrDir, "system")
				cancel()
				return
			case <-ctx.Done():
				return
			}
		}
	})
	s.calls.Shutdown(ctx)
	cancel()
	wg.Wait()
	s.legacy.Close()
	s.modern.Close()
}

// statsEvery is how often the server logs its counters.
const statsEvery = 5 * time.Minute

// reportStats logs the core's and the QUIC front's counters every
// statsEvery until stop is closed: sessions, calls, media bytes, drops by
// reason, write timeouts, slow consumers and the longest queue delay.
func reportStats(stop <-chan struct{}, log *slog.Logger, calls *core.Server, modern *quic.Server) {
	tick := time.NewTicker(statsEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			st := calls.Stats()
			log.Info("stats", attrTag, "stats", attrDir, "system",
				"sessions", st.Sessions, "calls", st.ActiveCalls, "calls_started", st.CallsStarted,
				"logins_ok", st.LoginsOK, "logins_refused", st.LoginsRefused, "invalid", st.Invalid,
				"media_in", st.MediaBytesIn, "media_out", st.MediaBytesOut, "drops", st.Drops,
				"write_failures", st.WriteFailures, "slow_consumers", st.SlowConsumers, "direct_writes", st.DirectWrites,
				"max_queue_delay", time.Duration(st.MaxQueueDelayNs),
				"quic_datagrams_dropped", modern.Stats().DatagramsDropped)
		}
	}
}

// listenAll binds the legacy command and media ports (TCP) and the QUIC
// port (UDP), or none of them; with shared, with SO_REUSEPORT.
func listenAll(cfg Config, shared *sharedPorts) (cmdLn, mediaLn net.Listener, udp net.PacketConn, err error) {
	if shared != nil {
		return shared.listen(cfg)
	}
	addr := func(port int) string { return net.JoinHostPort(cfg.Listen, strconv.Itoa(port)) }
	if cmdLn, err = net.Listen("tcp", addr(cfg.Command)); err != nil {
		return nil, nil, nil, fmt.Errorf("command port: %w", err)
	}
	if mediaLn, err = net.Listen("tcp", addr(cfg.Media)); err != nil {
		cmdLn.Close()
		return nil, nil, nil, fmt.Errorf("media port: %w", err)
	}
	if udp, err = net.ListenPacket("udp", addr(cfg.QUIC)); err != nil {
		cmdLn.Close()
		mediaLn.Close()
		return nil, nil, nil, fmt.Errorf("quic port: %w", err)
	}
	return cmdLn, mediaLn, udp, nil
}
