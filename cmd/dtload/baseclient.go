package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/client"
)

// baseDialer connects raw TLS and QUIC connections to the baseline
// forwarder, pinning its certificate.
type baseDialer struct {
	host              string
	tcpPort, quicPort int
	pin               pinSpec // loaded
	run               string  // this run's part of the pairing names, from newRunName
}

// newRunName returns a name no other run uses, for pairName.
func newRunName() string { return strings.ToLower(rand.Text()) }

// pairName is the TLS server name both parties of call i send over QUIC,
// by which the forwarder pairs them (serveQUIC).
func (d *baseDialer) pairName(i int) string {
	return fmt.Sprintf("call%d.%s.dtload", i, d.run)
}

func (d *baseDialer) tlsConfig(serverName string) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // pinned below
		ServerName:         serverName,
		NextProtos:         []string{baselineALPN},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no server certificate")
			}
			return d.pin.verify(cs.PeerCertificates[0])
		},
	}
}

// dial connects one party of baseline call i. The TLS forwarder pairs
// connections in the order they connect, so call i's parties must dial
// one after the other; over QUIC they name each other (pairName).
func (d *baseDialer) dial(ctx context.Context, kind client.Transport, i int) (mediaEnd, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if kind == client.TCP {
		td := tls.Dialer{Config: d.tlsConfig(d.host)}
		c, err := td.DialContext(ctx, "tcp", net.JoinHostPort(d.host, strconv.Itoa(d.tcpPort)))
		if err != nil {
			return nil, err
		}
		return &connEnd{c: c, buf: make([]byte, 16<<10)}, nil
	}
	qc, err := quicgo.DialAddr(ctx, net.JoinHostPort(d.host, strconv.Itoa(d.quicPort)), d.tlsConfig(d.pairName(i)), quicConfig())
	if err != nil {
		return nil, err
	}
	if kind == client.QUICDatagram {
		return &datagramEnd{c: qc}, nil
	}
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		qc.CloseWithError(0, "")
		return nil, err
	}
	return &streamEnd{qc: qc, st: st, buf: make([]byte, 16<<10)}, nil
}

// past unblocks a read when its context ends.
var past = time.Unix(1, 0)

// connEnd is a raw TLS connection to the forwarder.
type connEnd struct {
	c   net.Conn
	buf []byte // owned by the reader
}

func (e *connEnd) write(p []byte) error {
	e.c.SetWriteDeadline(time.Now().Add(stepTimeout))
	_, err := e.c.Write(p)
	return err
}

func (e *connEnd) read(ctx context.Context) ([]byte, error) {
	stop := context.AfterFunc(ctx, func() { e.c.SetReadDeadline(past) })
	defer stop()
	n, err := e.c.Read(e.buf)
	if n > 0 {
		return append([]byte(nil), e.buf[:n]...), nil
	}
	return nil, err
}

func (e *connEnd) datagram() bool { return false }
func (e *connEnd) Close() error   { return e.c.Close() }

// streamEnd is a QUIC connection to the forwarder with media on its first
// stream.
type streamEnd struct {
	qc  *quicgo.Conn
	st  *quicgo.Stream
	buf []byte // owned by the reader
}

func (e *streamEnd) write(p []byte) error {
	e.st.SetWriteDeadline(time.Now().Add(stepTimeout))
	_, err := e.st.Write(p)
	return err
}

func (e *streamEnd) read(ctx context.Context) ([]byte, error) {
	stop := context.AfterFunc(ctx, func() { e.st.SetReadDeadline(past) })
	defer stop()
	n, err := e.st.Read(e.buf)
	if n > 0 {
		return append([]byte(nil), e.buf[:n]...), nil
	}
	return nil, err
}

func (e *streamEnd) datagram() bool { return false }
func (e *streamEnd) Close() error   { return e.qc.CloseWithError(0, "") }

// datagramEnd is a QUIC connection to the forwarder with media in
// datagrams.
type datagramEnd struct{ c *quicgo.Conn }

func (e *datagramEnd) write(p []byte) error                     { return e.c.SendDatagram(p) }
func (e *datagramEnd) read(ctx context.Context) ([]byte, error) { return e.c.ReceiveDatagram(ctx) }
func (e *datagramEnd) datagram() bool                           { return true }
func (e *datagramEnd) Close() error                             { return e.c.CloseWithError(0, "") }
