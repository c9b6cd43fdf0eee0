package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

// baselineALPN is the QUIC application protocol of the baseline forwarder.
const baselineALPN = "dtload-baseline"

// forwarder is the yardstick: it pairs connections in arrival order (1st
// with 2nd, 3rd with 4th, ...) on each listener and copies every read to
// the partner, nothing else. On QUIC it copies the first stream each side
// opens, and datagrams; there it pairs by the TLS server name, so that
// dtload's clients can name their partner (pairName), and connections
// without one in arrival order. Close stops it and waits for its
// goroutines.
type forwarder struct {
	tlsConf *tls.Config
	tcpLn   net.Listener
	quicLn  *quicgo.Listener

	// mu guards the fields below.
	mu     sync.Mutex
	conns  map[io.Closer]struct{}
	closed bool

	wg sync.WaitGroup
}

// quicConfig is the QUIC configuration of both ends of the baseline.
func quicConfig() *quicgo.Config {
	return &quicgo.Config{
		EnableDatagrams:      true,
		HandshakeIdleTimeout: stepTimeout,
		MaxIdleTimeout:       60 * time.Second,
		KeepAlivePeriod:      15 * time.Second,
	}
}

// startForwarder serves TLS on tcpAddr and QUIC on udpAddr (either may be
// "" for none) with the certificate in cert.
func startForwarder(tcpAddr, udpAddr string, cert tls.Certificate) (*forwarder, error) {
	f := &forwarder{
		tlsConf: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{baselineALPN}},
		conns:   make(map[io.Closer]struct{}),
	}
	var err error
	if tcpAddr != "" {
		if f.tcpLn, err = net.Listen("tcp", tcpAddr); err != nil {
			return nil, err
		}
	}
	if udpAddr != "" {
		if f.quicLn, err = quicgo.ListenAddr(udpAddr, f.tlsConf, quicConfig()); err != nil {
			if f.tcpLn != nil {
				f.tcpLn.Close()
			}
			return nil, err
		}
	}
	if f.tcpLn != nil {
		f.wg.Go(f.serveTLS)
	}
	if f.quicLn != nil {
		f.wg.Go(f.serveQUIC)
	}
	return f, nil
}

// track registers c to be closed by Close; false when closing already.
func (f *forwarder) track(c io.Closer) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(cs ...io.Closer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		delete(f.conns, c)
	}
}

// Close closes the listeners and every connection, and waits.
func (f *forwarder) Close() {
	f.mu.Lock()
	f.closed = true
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	if f.tcpLn != nil {
		f.tcpLn.Close()
	}
	if f.quicLn != nil {
		f.quicLn.Close()
	}
	for c := range conns {
		c.Close()
	}
	f.wg.Wait()
}

func (f *forwarder) serveTLS() {
	var pending *tls.Conn
	for {
		c, err := f.tcpLn.Accept()
		if err != nil {
			return
		}
		// Shake hands now: a client's dial waits for it, and its partner
		// may only dial after that.
		tc := tls.Server(c, f.tlsConf)
		if !f.track(tc) {
			c.Close()
			return
		}
		f.wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
			defer cancel()
			if tc.HandshakeContext(ctx) != nil {
				tc.Close()
			}
		})
		if pending == nil {
			pending = tc
			continue
		}
		a, b := pending, tc
		pending = nil
		f.wg.Go(func() {
			defer f.untrack(a, b)
			pipeTLS(a, b)
		})
	}
}

// pipeTLS copies each read of a to b and of b to a until either ends,
// then closes both.
func pipeTLS(a, b net.Conn) {
	var wg sync.WaitGroup
	for _, d := range [][2]net.Conn{{a, b}, {b, a}} {
		wg.Go(func() {
			copyReads(d[1], d[0])
			a.Close()
			b.Close()
		})
	}
	wg.Wait()
}

func copyReads(dst io.Writer, src io.Reader) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// quicCloser closes a QUIC connection as an io.Closer.
type quicCloser struct{ c *quicgo.Conn }

func (q quicCloser) Close() error { return q.c.CloseWithError(0, "") }

// serveQUIC pairs QUIC connections by their TLS server name. Arrival
// order is not dial order on QUIC: a connection is accepted once the
// server has read the client's Finished, which the client sends and
// forgets, so under load the second party's whole handshake can finish
// first and two calls would get each other's parties.
func (f *forwarder) serveQUIC() {
	var mu sync.Mutex
	pending := make(map[string]*quicgo.Conn) // by server name; "" holds one without a name
	for {
		c, err := f.quicLn.Accept(context.Background())
		if err != nil {
			return
		}
		if !f.track(quicCloser{c}) {
			c.CloseWithError(0, "")
			return
		}
		name := c.ConnectionState().TLS.ServerName
		mu.Lock()
		a := pending[name]
		if a == nil {
			pending[name] = c
			// One whose partner never comes must not stay.
			context.AfterFunc(c.Context(), func() {
				mu.Lock()
				defer mu.Unlock()
				if pending[name] == c {
					delete(pending, name)
					f.untrack(quicCloser{c})
				}
			})
			mu.Unlock()
			continue
		}
		delete(pending, name)
		mu.Unlock()
		b := c
		f.wg.Go(func() {
			defer f.untrack(quicCloser{a}, quicCloser{b})
			pipeQUIC(a, b)
		})
	}
}

// pipeQUIC copies datagrams both ways and, once both sides have opened
// a stream, the first stream both ways; when either connection ends it
// closes both.
func pipeQUIC(a, b *quicgo.Conn) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopA := context.AfterFunc(a.Context(), cancel)
	defer stopA()
	stopB := context.AfterFunc(b.Context(), cancel)
	defer stopB()
	var wg sync.WaitGroup
	wg.Go(func() { copyDatagrams(ctx, b, a) })
	wg.Go(func() { copyDatagrams(ctx, a, b) })
	wg.Go(func() { pipeStreams(ctx, a, b) })
	<-ctx.Done()
	a.CloseWithError(0, "")
	b.CloseWithError(0, "")
	wg.Wait()
}

func copyDatagrams(ctx context.Context, dst, src *quicgo.Conn) {
	for {
		d, err := src.ReceiveDatagram(ctx)
		if err != nil {
			return
		}
		if err := dst.SendDatagram(d); err != nil {
			var tooLarge *quicgo.DatagramTooLargeError
			if !errors.As(err, &tooLarge) {
				return
			}
		}
	}
}

func pipeStreams(ctx context.Context, a, b *quicgo.Conn) {
	var sa, sb *quicgo.Stream
	var wg sync.WaitGroup
	wg.Go(func() { sa, _ = a.AcceptStream(ctx) })
	wg.Go(func() { sb, _ = b.AcceptStream(ctx) })
	wg.Wait()
	if sa == nil || sb == nil {
		return
	}
	wg.Go(func() { copyReads(sb, sa) })
	wg.Go(func() { copyReads(sa, sb) })
	wg.Wait()
}
