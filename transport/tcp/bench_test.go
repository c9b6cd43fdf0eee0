package tcp_test

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/transport/tcp"
)

// The media path benchmarks send 32-byte frames through one call over
// loopback TLS, a window of frames at a time (a window fits the relay's
// queue, so nothing is dropped), and report frames per second. The baseline
// is the yardstick measured in the same run: a bare forwarder that copies
// each TLS read of one connection to the other, nothing else.

const benchWindow = 16

func BenchmarkMediaRelay(b *testing.B) {
	for _, kind := range []tlsKind{modern, android17} {
		b.Run(kind.String(), func(b *testing.B) {
			e := start(b, core.Config{}, tcp.Config{})
			x, y := e.online("alice", kind), e.online("bob", kind)
			call(b, x, y)
			benchFrames(b, x.media, y.media)
		})
	}
}

func BenchmarkMediaBaselineForwarder(b *testing.B) {
	cert := start(b, core.Config{}, tcp.Config{}).cert // reuse a test certificate
	pair, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		b.Fatal(err)
	}
	ln := listen(b)
	srvCfg := &tls.Config{Certificates: []tls.Certificate{pair}}
	var wg sync.WaitGroup
	wg.Go(func() {
		a, err1 := ln.Accept()
		c, err2 := ln.Accept()
		if err1 != nil || err2 != nil {
			return
		}
		ta, tc := tls.Server(a, srvCfg), tls.Server(c, srvCfg)
		var fw sync.WaitGroup
		fw.Go(func() { io.Copy(tc, ta); tc.Close() })
		fw.Go(func() { io.Copy(ta, tc); ta.Close() })
		fw.Wait()
	})
	// The handshakes happen on first use: the forwarder shakes hands only
	// once both connections have arrived.
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		return tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	}
	x, y := dial(), dial()
	benchFrames(b, x, y)
	x.Close()
	y.Close()
	ln.Close()
	wg.Wait()
}

// benchFrames sends b.N frames from src to dst, benchWindow at a time.
func benchFrames(b *testing.B, src, dst net.Conn) {
	frame := frames(0, 1)
	buf := make([]byte, benchWindow*len(frame))
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += benchWindow {
		n := min(benchWindow, b.N-sent)
		for range n {
			if _, err := src.Write(frame); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := io.ReadFull(dst, buf[:n*len(frame)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
