package client

import (
	"context"
	"net"
	"time"
)

// NewForTest returns a Client that is logged in as user with session sid
// over conn, a legacy command channel (one message per Write), as if Dial
// and Login had run. Tests play the server on conn's other end.
func NewForTest(conn net.Conn, user, sid string, timeout time.Duration) *Client {
	c := newClient(Options{Timeout: timeout}, pin{})
	c.cmd, c.user, c.sid = newRecordChannel(conn), user, sid
	c.wg.Go(c.readLoop)
	return c
}

// RegisterAsForTest opens a media channel registered for session sid
// (possibly not the client's own) and returns how it ended, or nil if it
// is still open after wait.
func (c *Client) RegisterAsForTest(ctx context.Context, sid string, wait time.Duration) error {
	link, err := c.openMedia(ctx, sid)
	if err != nil {
		return err
	}
	m := newMedia(link, c.o.Transport == QUICDatagram, c.o.Timeout)
	defer m.Close()
	select {
	case <-m.Done():
		return m.Err()
	case <-time.After(wait):
		return nil
	}
}

// WrapUDPForTest makes the package wrap every UDP socket it opens with
// wrap, until the returned function is called. Not for parallel tests.
func WrapUDPForTest(wrap func(net.PacketConn) net.PacketConn) (restore func()) {
	wrapUDPForTest.Store(&wrap)
	return func() { wrapUDPForTest.Store(nil) }
}

// DialTCPForTest makes the package open its TCP connections with dial
// (given the dialer it would use and the address), until the returned
// function is called. Not for parallel tests.
func DialTCPForTest(dial func(context.Context, *net.Dialer, string) (net.Conn, error)) (restore func()) {
	dialTCPForTest.Store(&dial)
	return func() { dialTCPForTest.Store(nil) }
}
