package quic_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/internal/testserver"
	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/transport/quic"
	"github.com/dtcall/dtcall/transport/transporttest"
	"github.com/dtcall/dtcall/wire"
)

// The QUIC front's channels (the command stream; a media stream in stream
// mode and in datagram mode) through the real front on 127.0.0.1 with
// quic-go clients, against the transport conformance suite.

var (
	commandFraming = transporttest.Framing{
		Terminator:  "\n",
		MaxMessage:  wire.MaxCommand,
		CutOversize: true, // a line longer than a command is cut; the parser refuses it
	}
	streamFraming = transporttest.Framing{
		MediaStream: true, // no keepalives: every byte is media
	}
	datagramFraming = transporttest.Framing{
		MaxMedia:     1200, // the adapter's first guess at the datagram size
		Lossy:        true,
		NoEarlyMedia: true, // datagrams before the mode switch are dropped
	}
)

func TestConformance(t *testing.T) {
	f := startConformance(t)
	t.Run("Command", func(t *testing.T) { transporttest.TestConn(t, f.commandPipe, commandFraming) })
	t.Run("MediaStream", func(t *testing.T) { transporttest.TestMediaConn(t, f.mediaPipe(false), streamFraming) })
	t.Run("MediaDatagram", func(t *testing.T) { transporttest.TestMediaConn(t, f.mediaPipe(true), datagramFraming) })
}

// conformanceFront is the QUIC front with a handler that hands the streams
// to the test.
type conformanceFront struct {
	h    *transporttest.Handler
	addr *net.UDPAddr
}

func startConformance(t *testing.T) *conformanceFront {
	cert := testcert.Write(t)
	h := transporttest.NewHandler()
	srv, err := quic.New(quic.Config{CertFile: cert.CertFile, KeyFile: cert.KeyFile}, h, testserver.Logger())
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(pc); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return &conformanceFront{h: h, addr: pc.LocalAddr().(*net.UDPAddr)}
}

// client is one QUIC client connection of a pipe, on a socket that can
// stall (drop all it receives).
type client struct {
	qc   *quicgo.Conn
	sock *stallConn
}

func (f *conformanceFront) dial(t *testing.T) *client {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	sock := &stallConn{PacketConn: udp}
	tr := &quicgo.Transport{Conn: sock}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tc := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quic.ALPN}}
	qc, err := tr.Dial(ctx, f.addr, tc, &quicgo.Config{EnableDatagrams: true})
	if err != nil {
		tr.Close()
		udp.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		qc.CloseWithError(0, "")
		tr.Close()
		udp.Close()
	})
	return &client{qc: qc, sock: sock}
}

// open opens a stream and writes first on it (the server sees a stream
// only once something arrives on it).
func (c *client) open(t *testing.T, first []byte) *quicgo.Stream {
	t.Helper()
	st, err := c.qc.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(first); err != nil {
		t.Fatal(err)
	}
	return st
}

func (c *client) local() netip.AddrPort {
	ap := c.qc.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// command opens the client's command stream and takes the server's side,
// its first line read.
func (f *conformanceFront) command(t *testing.T, c *client) (transport.Conn, *linePeer) {
	t.Helper()
	p := newLinePeer(c, c.open(t, []byte("hello\n")))
	cmd := f.h.Command(t, c.local())
	cmd.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := cmd.ReadMessage(); err != nil || string(got) != "hello" {
		t.Fatalf("first line read as %q, %v", got, err)
	}
	cmd.SetReadDeadline(time.Time{})
	return cmd, p
}

func (f *conformanceFront) commandPipe(t *testing.T) transporttest.Pipe {
	cmd, p := f.command(t, f.dial(t))
	return transporttest.Pipe{Conn: cmd, Peer: p}
}

// mediaPipe registers a media stream after the command stream, in stream
// or datagram mode; the front does not parse the registration (the core
// does), so any line serves.
func (f *conformanceFront) mediaPipe(dgram bool) transporttest.MakeMediaPipe {
	return func(t *testing.T, early []byte) transporttest.MediaPipe {
		c := f.dial(t)
		cmd, cp := f.command(t, c)
		// The front takes media streams only after a login reply went out
		// on the command stream (before it, it resets them).
		login := now() + "|resp|login|6144737382751829473"
		if err := cmd.WriteMessage([]byte(login)); err != nil {
			t.Fatal(err)
		}
		if got, err := cp.ReadMessage(time.Now().Add(10 * time.Second)); err != nil || string(got) != login {
			t.Fatalf("login reply read as %q, %v", got, err)
		}
		reg := now() + "|6144737382751829473"
		if dgram {
			reg += "|datagram"
		}
		st := c.open(t, append([]byte(reg+"\n"), early...))
		m := f.h.Media(t, c.local())
		m.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got, err := m.ReadMessage(); err != nil || string(got) != reg {
			t.Fatalf("registration read as %q, %v", got, err)
		}
		m.SetReadDeadline(time.Time{})
		var p transporttest.Peer = newLinePeer(c, st)
		if dgram {
			if err := m.EnableDatagrams(); err != nil {
				t.Fatal(err)
			}
			p = &datagramPeer{linePeer: newLinePeer(c, st)}
		}
		return transporttest.MediaPipe{Conn: m, Peer: p, Origin: cmd.Origin()}
	}
}

// linePeer is a QUIC client's end of a stream: lines as messages, the
// stream's bytes as media.
type linePeer struct {
	c   *client
	st  *quicgo.Stream
	br  *bufio.Reader // owned by the reader
	buf []byte
}

func newLinePeer(c *client, st *quicgo.Stream) *linePeer {
	return &linePeer{c: c, st: st, br: bufio.NewReader(st), buf: make([]byte, 64<<10)}
}

func (p *linePeer) WriteMessage(msg []byte) error {
	_, err := p.st.Write(append(bytes.Clone(msg), '\n'))
	return err
}

func (p *linePeer) ReadMessage(deadline time.Time) ([]byte, error) {
	p.st.SetReadDeadline(deadline)
	line, err := p.br.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	return line[:len(line)-1], nil
}

func (p *linePeer) WriteMedia(b []byte) error { _, err := p.st.Write(b); return err }

func (p *linePeer) ReadMedia(deadline time.Time) ([]byte, error) {
	p.st.SetReadDeadline(deadline)
	n, err := p.br.Read(p.buf)
	if n > 0 {
		return bytes.Clone(p.buf[:n]), nil
	}
	return nil, err
}

// Stall: not reading is enough; the stream's flow control window fills.
func (p *linePeer) Stall() {}

func (p *linePeer) WaitEnd(deadline time.Time) error {
	p.st.SetReadDeadline(deadline)
	for {
		if _, err := p.br.Read(p.buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(deadline) {
				return nil
			}
			return err
		}
	}
}

func (p *linePeer) Refusal(err error) (transport.Refusal, bool) {
	var se *quicgo.StreamError
	if errors.As(err, &se) && se.Remote {
		return transport.Refusal(se.ErrorCode), true
	}
	return 0, false
}

func (p *linePeer) LocalAddr() netip.AddrPort { return p.c.local() }

func (p *linePeer) Close() error {
	p.st.CancelRead(0)
	return p.st.Close()
}

// datagramPeer is the client's end of datagram media: datagrams, and the
// anchor stream whose end is the channel's.
type datagramPeer struct{ *linePeer }

func (p *datagramPeer) WriteMedia(b []byte) error { return p.c.qc.SendDatagram(b) }

func (p *datagramPeer) ReadMedia(deadline time.Time) ([]byte, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	return p.c.qc.ReceiveDatagram(ctx)
}

// Stall drops everything the client receives: nothing is acknowledged, so
// the server's congestion window and datagram queue fill.
func (p *datagramPeer) Stall() { p.c.sock.stalled.Store(true) }

// stallConn is a UDP socket that drops what it receives once stalled.
type stallConn struct {
	net.PacketConn
	stalled atomic.Bool
}

// SetReadBuffer and SetWriteBuffer let quic-go size the socket's buffers.
func (c *stallConn) SetReadBuffer(n int) error  { return c.PacketConn.(*net.UDPConn).SetReadBuffer(n) }
func (c *stallConn) SetWriteBuffer(n int) error { return c.PacketConn.(*net.UDPConn).SetWriteBuffer(n) }

func (c *stallConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.stalled.Load() {
			return n, addr, err
		}
	}
}
