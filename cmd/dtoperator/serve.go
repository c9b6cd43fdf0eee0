package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/dtcall/dtcall/accounts"
	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/transport/quic"
	"github.com/dtcall/dtcall/transport/tcp"
)

// drainTimeout is how long a shutdown lets calls in progress end.
const drainTimeout = 10 * time.Second

// serve runs the server until ctx ends, then shuts down in order: stop
// accepting, let calls drain, close the rest, wait for every goroutine.
// Everything that can fail is set up before anything is served.
func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("starting dtoperator", "config", cfg, attrTag, "system", attrDir, "system")
	users, err := loadUsers(cfg, log)
	if err != nil {
		return err
	}
	certFile, keyFile, err := certificate(cfg, log)
	if err != nil {
		return err
	}
	store := accounts.NewStore(users, 0)
	calls := core.New(core.Config{Window: cfg.Window}, store, log)
	legacy, err := tcp.New(tcp.Config{
		CertFile: certFile, KeyFile: keyFile,
		DHParamsFile: cfg.DHFile, Ciphers: cfg.Ciphers,
	}, calls, log)
	if err != nil {
		return err
	}
	defer legacy.Close()
	modern, err := quic.New(quic.Config{
		CertFile: certFile, KeyFile: keyFile,
		KeepAlive: cfg.KeepAlive, IdleTimeout: cfg.Idle,
	}, calls, log)
	if err != nil {
		return err
	}
	defer modern.Close()
	cmdLn, mediaLn, udp, err := listenAll(cfg)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { legacy.ServeCommand(cmdLn) })
	wg.Go(func() { legacy.ServeMedia(mediaLn) })
	wg.Go(func() { modern.Serve(udp) })
	log.Info("dtoperator ready", attrTag, "system", attrDir, "system",
		"command", cmdLn.Addr().String(), "media", mediaLn.Addr().String(),
		"quic", udp.LocalAddr().String(), "users", store.Len(), "dhe", legacy.DHEAvailable())

	reportStats(ctx, log, calls, modern)
	log.Info("shutting down: no new connections; letting calls end", attrTag, "system", attrDir, "system", "within", drainTimeout)
	legacy.CloseListeners()
	modern.CloseListeners()
	drain, cancel := context.WithTimeout(context.Background(), drainTimeout)
	calls.Shutdown(drain)
	cancel()
	legacy.Close()
	modern.Close()
	wg.Wait()
	log.Info("dtoperator stopped", attrTag, "system", attrDir, "system")
	return nil
}

// statsEvery is how often the server logs its counters.
const statsEvery = 5 * time.Minute

// reportStats logs the core's and the QUIC front's counters every
// statsEvery until ctx ends: sessions, calls, media bytes, drops by
// reason, write timeouts, slow consumers and the longest queue delay.
func reportStats(ctx context.Context, log *slog.Logger, calls *core.Server, modern *quic.Server) {
	tick := time.NewTicker(statsEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			st := calls.Stats()
			log.Info("stats", attrTag, "stats", attrDir, "system",
				"sessions", st.Sessions, "calls", st.ActiveCalls, "calls_started", st.CallsStarted,
				"logins_ok", st.LoginsOK, "logins_refused", st.LoginsRefused, "invalid", st.Invalid,
				"media_in", st.MediaBytesIn, "media_out", st.MediaBytesOut, "drops", st.Drops,
				"write_timeouts", st.WriteTimeouts, "slow_consumers", st.SlowConsumers, "direct_writes", st.DirectWrites,
				"max_queue_delay", time.Duration(st.MaxQueueDelayNs),
				"quic_datagrams_dropped", modern.Stats().DatagramsDropped)
		}
	}
}

// listenAll binds the legacy command and media ports (TCP) and the QUIC
// port (UDP), or none of them.
func listenAll(cfg Config) (cmdLn, mediaLn net.Listener, udp net.PacketConn, err error) {
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
