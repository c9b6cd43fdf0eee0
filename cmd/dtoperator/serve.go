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
	front, err := tcp.New(tcp.Config{
		CertFile: certFile, KeyFile: keyFile,
		DHParamsFile: cfg.DHFile, Ciphers: cfg.Ciphers,
	}, calls, log)
	if err != nil {
		return err
	}
	cmdLn, mediaLn, err := listenPair(cfg)
	if err != nil {
		front.Close()
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { front.ServeCommand(cmdLn) })
	wg.Go(func() { front.ServeMedia(mediaLn) })
	log.Info("dtoperator ready", attrTag, "system", attrDir, "system",
		"command", cmdLn.Addr().String(), "media", mediaLn.Addr().String(),
		"users", store.Len(), "dhe", front.DHEAvailable())

	<-ctx.Done()
	log.Info("shutting down: no new connections; letting calls end", attrTag, "system", attrDir, "system", "within", drainTimeout)
	front.CloseListeners()
	drain, cancel := context.WithTimeout(context.Background(), drainTimeout)
	calls.Shutdown(drain)
	cancel()
	front.Close()
	wg.Wait()
	log.Info("dtoperator stopped", attrTag, "system", attrDir, "system")
	return nil
}

// listenPair binds the command and media ports, or neither.
func listenPair(cfg Config) (cmdLn, mediaLn net.Listener, err error) {
	cmdLn, err = net.Listen("tcp", net.JoinHostPort(cfg.Listen, strconv.Itoa(cfg.Command)))
	if err != nil {
		return nil, nil, fmt.Errorf("command port: %w", err)
	}
	mediaLn, err = net.Listen("tcp", net.JoinHostPort(cfg.Listen, strconv.Itoa(cfg.Media)))
	if err != nil {
		cmdLn.Close()
		return nil, nil, fmt.Errorf("media port: %w", err)
	}
	return cmdLn, mediaLn, nil
}
