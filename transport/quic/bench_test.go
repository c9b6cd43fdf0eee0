package quic_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/transport/quic"
)

// The QUIC media benchmarks send 32-byte frames through one call over
// loopback, a window at a time (a window fits the relay's queue), and report
// frames per second; the datagram ones also report frames lost. The
// baselines, measured in the same run, are bare quic-go forwarders that copy
// one client's stream (or datagrams) to the other's, nothing else.
// Compare with transport/tcp's BenchmarkMediaRelay.

const window = 16

func BenchmarkMediaRelay(b *testing.B) {
	for _, dgram := range []bool{false, true} {
		b.Run(map[bool]string{false: "stream", true: "datagram"}[dgram], func(b *testing.B) {
			e := start(b, core.Config{})
			x, y := e.online("alice", dgram), e.online("bob", dgram)
			call(b, x, y)
			if dgram {
				benchDatagrams(b, x.qc, y.qc)
			} else {
				benchStream(b, x.media, y.media)
			}
		})
	}
}

func BenchmarkMediaBaselineForwarder(b *testing.B) {
	for _, dgram := range []bool{false, true} {
		b.Run(map[bool]string{false: "stream", true: "datagram"}[dgram], func(b *testing.B) {
			e := start(b, core.Config{}) // for its certificate
			pair, err := tls.LoadX509KeyPair(e.cert.CertFile, e.cert.KeyFile)
			if err != nil {
				b.Fatal(err)
			}
			ln, err := quicgo.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{quic.ALPN}},
				&quicgo.Config{EnableDatagrams: true})
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			var wg sync.WaitGroup
			defer wg.Wait()
			wg.Go(func() { forward(ln, dgram) })
			e.addr = ln.Addr().(*net.UDPAddr)
			tx, x, err := e.dialQUIC(quic.ALPN)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { x.CloseWithError(0, ""); tx.Close(); tx.Conn.Close() }()
			ty, y, err := e.dialQUIC(quic.ALPN)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { y.CloseWithError(0, ""); ty.Close(); ty.Conn.Close() }()
			if dgram {
				benchDatagrams(b, x, y)
				return
			}
			sx, _ := x.OpenStreamSync(context.Background())
			sy, _ := y.OpenStreamSync(context.Background())
			sx.Write([]byte("hello\n")) // a stream is announced with its first bytes
			sy.Write([]byte("hello\n"))
			sy.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.ReadFull(sy, make([]byte, 6))
			sx.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.ReadFull(sx, make([]byte, 6))
			benchStream(b, sx, sy)
		})
	}
}

// forward pairs the first two connections ln accepts and copies one's
// stream or datagrams to the other, both ways, until they close.
func forward(ln *quicgo.Listener, dgram bool) {
	ctx := context.Background()
	a, err := ln.Accept(ctx)
	if err != nil {
		return
	}
	c, err := ln.Accept(ctx)
	if err != nil {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	if dgram {
		pipe := func(from, to *quicgo.Conn) {
			for {
				p, err := from.ReceiveDatagram(from.Context())
				if err != nil || to.SendDatagram(p) != nil {
					return
				}
			}
		}
		wg.Go(func() { pipe(a, c) })
		wg.Go(func() { pipe(c, a) })
		return
	}
	sa, err := a.AcceptStream(ctx)
	if err != nil {
		return
	}
	sc, err := c.AcceptStream(ctx)
	if err != nil {
		return
	}
	wg.Go(func() { io.Copy(sc, sa) })
	wg.Go(func() { io.Copy(sa, sc) })
}

func benchStream(b *testing.B, src io.Writer, dst interface {
	io.Reader
	SetReadDeadline(time.Time) error
}) {
	f := frame(0)
	buf := make([]byte, window*len(f))
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += window {
		n := min(window, b.N-sent)
		for range n {
			if _, err := src.Write(f); err != nil {
				b.Fatal(err)
			}
		}
		dst.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(dst, buf[:n*len(f)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

func benchDatagrams(b *testing.B, src, dst *quicgo.Conn) {
	f := frame(0)
	lost := 0
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += window {
		n := min(window, b.N-sent)
		for range n {
			if err := src.SendDatagram(f); err != nil {
				b.Fatal(err)
			}
		}
		for got := 0; got < n; got++ {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			_, err := dst.ReceiveDatagram(ctx)
			cancel()
			if err != nil {
				lost += n - got
				break
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N-lost)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(lost), "lost")
}
