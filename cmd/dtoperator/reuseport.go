package main

// The "reuse_port" setting: the ports shared with another dtoperator, for
// an upgrade that drops no call (README, "Upgrading without dropping
// calls"). The sockets and the QUIC steering program are in
// internal/reuseport.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/internal/reuseport"
)

// steeringFile, in the data folder, holds the QUIC steering byte of the
// process that started last, in decimal.
const steeringFile = "quic-steering"

// sharedPorts is a server's part in a reuseport group: the first byte of
// its QUIC connection IDs, different from the running process's.
type sharedPorts struct{ steer byte }

// sharePorts returns nil when reuse_port is off. Otherwise it takes the
// steering byte after the one in the data folder and writes its own there.
func sharePorts(cfg Config, log *slog.Logger) (*sharedPorts, error) {
	if !cfg.ReusePort {
		return nil, nil
	}
	if !reuseport.Supported {
		return nil, errors.New("reuse_port needs Linux (SO_REUSEPORT and a BPF program that steers QUIC packets); turn it off")
	}
	if cfg.Data == "" {
		return nil, errors.New("reuse_port needs a data folder (data) for the QUIC steering byte")
	}
	if err := os.MkdirAll(cfg.Data, dataDirMode); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	name := filepath.Join(cfg.Data, steeringFile)
	prev := readSteering(name, log)
	p := &sharedPorts{steer: reuseport.NextByte(prev)}
	if err := writeFileAtomic(name, []byte(strconv.Itoa(int(p.steer))+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("QUIC steering byte: %w", err)
	}
	log.Info("reuse_port: sharing the ports with the running dtoperator, if any", attrTag, "system", attrDir, "system",
		"steering", p.steer, "previous", prev)
	return p, nil
}

// readSteering returns the byte in name, 0 if there is none.
func readSteering(name string, log *slog.Logger) byte {
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	n, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 8)
	if err != nil || perr != nil {
		log.Warn("QUIC steering byte unreadable; taking 1", attrTag, "system", attrDir, "system",
			"file", name, "err", errors.Join(err, perr))
		return 0
	}
	return byte(n)
}

// cidGenerator is the QUIC front's connection ID generator: nil (quic-go's
// own) without reuse_port.
func (p *sharedPorts) cidGenerator() quicgo.ConnectionIDGenerator {
	if p == nil {
		return nil
	}
	return reuseport.CIDGenerator{Byte: p.steer}
}

// listen binds the ports as listenAll does, with SO_REUSEPORT, and
// attaches the steering program to the QUIC socket's group. On drain the
// listeners close and new TCP connections go to the other process (Linux
// resets those still in a closed listener's accept queue, and their
// clients reconnect); the UDP socket stays open for the calls in progress,
// whose packets the program keeps sending here.
func (p *sharedPorts) listen(cfg Config) (cmdLn, mediaLn net.Listener, udp net.PacketConn, err error) {
	ctx := context.Background()
	addr := func(port int) string { return net.JoinHostPort(cfg.Listen, strconv.Itoa(port)) }
	if cmdLn, err = reuseport.Listen(ctx, addr(cfg.Command)); err != nil {
		return nil, nil, nil, fmt.Errorf("command port: %w", err)
	}
	if mediaLn, err = reuseport.Listen(ctx, addr(cfg.Media)); err != nil {
		cmdLn.Close()
		return nil, nil, nil, fmt.Errorf("media port: %w", err)
	}
	conn, err := reuseport.ListenUDP(ctx, addr(cfg.QUIC), p.steer)
	if err != nil {
		cmdLn.Close()
		mediaLn.Close()
		return nil, nil, nil, fmt.Errorf("quic port: %w", err)
	}
	return cmdLn, mediaLn, conn, nil
}
