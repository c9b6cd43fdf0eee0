package transporttest_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The suite run against a toy transport, to show what a new transport
// writes to get it (and to test the suite without the real adapters): a
// message is a 2-byte length and that many bytes, over TCP on 127.0.0.1;
// the one-byte message "D" is a media keepalive.

func TestFramedConn(t *testing.T) {
	f := transporttest.Framing{MaxMessage: maxFrame, Keepalive: []byte("D"), MaxMedia: maxFrame, NoDatagrams: true}
	transporttest.TestConn(t, func(t *testing.T) transporttest.Pipe {
		c, p := framedPipe(t)
		return transporttest.Pipe{Conn: c, Peer: p}
	}, f)
	transporttest.TestMediaConn(t, func(t *testing.T, early []byte) transporttest.MediaPipe {
		c, p := framedPipe(t)
		if early != nil {
			p.WriteMedia(early)
		}
		return transporttest.MediaPipe{Conn: c, Peer: p}
	}, f)
}

const maxFrame = 4096

// framedPipe connects a framed channel (the server side) and its peer.
func framedPipe(t *testing.T) (*framed, *framedPeer) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	c, p := &framed{nc: sc, buf: make([]byte, maxFrame)}, &framedPeer{framed{nc: pc, buf: make([]byte, maxFrame)}}
	t.Cleanup(func() { c.Close(); p.Close() })
	return c, p
}

// framed is the toy transport's channel.
type framed struct {
	nc  net.Conn
	buf []byte // owned by the reader
}

func (c *framed) ReadMessage() ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c.nc, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > len(c.buf) {
		return nil, errors.New("frame too long")
	}
	_, err := io.ReadFull(c.nc, c.buf[:n])
	return c.buf[:n], err
}

// WriteMessage writes msg as frames of at most maxFrame bytes, in one Write.
func (c *framed) WriteMessage(msg []byte) error {
	var out []byte
	for len(msg) > 0 || out == nil {
		n := min(len(msg), maxFrame)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
		out, msg = append(out, msg[:n]...), msg[n:]
	}
	_, err := c.nc.Write(out)
	return err
}

func (c *framed) ReadMedia() ([]byte, error) {
	for {
		b, err := c.ReadMessage()
		if err != nil || string(b) != "D" {
			return b, err
		}
	}
}

func (c *framed) WriteMedia(p []byte) error          { return c.WriteMessage(p) }
func (c *framed) SetReadDeadline(t time.Time) error  { return c.nc.SetReadDeadline(t) }
func (c *framed) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }
func (c *framed) RemoteAddr() netip.AddrPort         { return c.nc.RemoteAddr().(*net.TCPAddr).AddrPort() }
func (c *framed) Origin() any                        { return c.RemoteAddr().Addr() }
func (c *framed) Close() error                       { return c.nc.Close() }
func (c *framed) EnableDatagrams() error             { return errors.New("no datagrams") }
func (c *framed) Refuse(transport.Refusal)           { c.Close() }

// framedPeer is the client end: the same framing.
type framedPeer struct{ framed }

func (p *framedPeer) ReadMessage(deadline time.Time) ([]byte, error) {
	p.nc.SetReadDeadline(deadline)
	b, err := p.framed.ReadMessage()
	return append([]byte(nil), b...), err
}

func (p *framedPeer) ReadMedia(deadline time.Time) ([]byte, error) { return p.ReadMessage(deadline) }
func (p *framedPeer) Stall()                                       {}
func (p *framedPeer) LocalAddr() netip.AddrPort                    { return p.nc.LocalAddr().(*net.TCPAddr).AddrPort() }

func (p *framedPeer) WaitEnd(deadline time.Time) error {
	for {
		if _, err := p.ReadMessage(deadline); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return err
		}
	}
}
