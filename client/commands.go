package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// checkField refuses what would break the framing: a field is non-empty
// and holds neither '|' (the separator) nor a newline (QUIC's terminator).
func checkField(what, s string) error {
	if s == "" || strings.ContainsAny(s, "|\n") {
		return fmt.Errorf("%s %q: must be non-empty, without '|' or newline", what, s)
	}
	return nil
}

// Login logs in as user. On refusal it returns a *RefusedError (wrong user
// name or password, or a clock more than the server's window off). A
// Client logs in once; logging in as the same user elsewhere later closes
// this client's channels.
func (c *Client) Login(ctx context.Context, user, password string) error {
	if err := checkField("user name", user); err != nil {
		return err
	}
	if err := checkField("password", password); err != nil {
		return errors.New("password: must be non-empty, without '|' or newline")
	}
	c.mu.Lock()
	done := c.sid != ""
	c.mu.Unlock()
	if done {
		return errors.New("login: already logged in")
	}
	p := &pending{ch: make(chan result, 1)}
	if err := c.send([]*pending{p}, timestamp()+"|login|"+user+"|"+password); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	r, err := c.wait(ctx, p)
	switch {
	case err != nil:
		return fmt.Errorf("login: %w", err)
	case r.msg.invalid():
		return refused("login", user, r.msg)
	case r.msg.kind != "resp" || r.msg.sub != "login":
		return fmt.Errorf("login: unexpected reply %q", r.msg)
	}
	if n, err := strconv.ParseUint(r.msg.value, 10, 63); err != nil || n == 0 {
		return fmt.Errorf("login: %w: %q", errNoSession, r.msg.value)
	}
	c.mu.Lock()
	c.user, c.sid = user, r.msg.value
	c.mu.Unlock()
	return nil
}

// SessionID is the session id the server handed out at login ("" before).
func (c *Client) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sid
}

// User is the user logged in ("" before Login).
func (c *Client) User() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.user
}

// Lookup reports whether an account named user exists.
func (c *Client) Lookup(ctx context.Context, user string) (bool, error) {
	if err := checkField("user name", user); err != nil {
		return false, err
	}
	m, err := c.request(ctx, "lookup", user)
	switch {
	case err != nil:
		return false, err
	case m.invalid():
		return false, refused("lookup", user, m)
	case m.kind == "lookup" && m.value == "exists":
		return true, nil
	case m.kind == "lookup" && m.value == "doesntexist":
		return false, nil
	}
	return false, fmt.Errorf("lookup %s: unexpected reply %q", user, m)
}

// Call rings user. Available means it rings: then wait on Events for
// Started, Rejected or Ended, or give up with Timeout. It needs a
// registered media channel (RegisterMedia); without one, or while already
// ringing or in a call, the server refuses it (*RefusedError).
func (c *Client) Call(ctx context.Context, user string) (CallResult, error) {
	if err := checkField("user name", user); err != nil {
		return 0, err
	}
	m, err := c.request(ctx, "call", user)
	if err != nil {
		return 0, err
	}
	return callResult(m, user)
}

func callResult(m message, user string) (CallResult, error) {
	if m.invalid() {
		return 0, refused("call", user, m)
	}
	if m.kind == "ring" {
		switch m.sub {
		case "available":
			return Available, nil
		case "notavailable":
			return NotAvailable, nil
		case "busy":
			return Busy, nil
		}
	}
	return 0, fmt.Errorf("call %s: unexpected reply %q", user, m)
}

// Accept answers the call ringing from caller. Both parties then get
// Started. It returns a *RefusedError when no call from caller rings (the
// caller gave up, or left).
//
// The server does not answer accept, reject, end or timeout unless it
// refuses them, so these methods follow the command with a lookup of the
// client's own name: its answer arriving first proves the command was
// carried out. They block for that round trip.
func (c *Client) Accept(ctx context.Context, caller string) error {
	return c.silent(ctx, "accept", caller)
}

// Reject declines the call ringing from caller; the caller gets Rejected.
func (c *Client) Reject(ctx context.Context, caller string) error {
	return c.silent(ctx, "reject", caller)
}

// End hangs up the call with peer, or (as the caller) cancels it while it
// rings; the peer gets Ended.
func (c *Client) End(ctx context.Context, peer string) error {
	err := c.silent(ctx, "end", peer)
	c.watch.set("", peer) // the call with peer is over either way
	return err
}

// Timeout gives up a call to callee that still rings (clients do after
// about 20 s); the callee gets TimedOut.
func (c *Client) Timeout(ctx context.Context, callee string) error {
	return c.silent(ctx, "timeout", callee)
}

func (c *Client) silent(ctx context.Context, verb, peer string) error {
	if err := checkField("user name", peer); err != nil {
		return err
	}
	return c.silentRequest(ctx, verb, peer)
}

// Media is the current media channel, nil before RegisterMedia.
func (c *Client) Media() *Media {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.media
}

// RegisterMedia opens a new media channel (a TLS connection to the media
// port, or a new QUIC stream), registers it for the session, and waits
// until the server has bound it. It closes the previous media channel
// first: clients register anew after every call, which flushes stale
// audio. The result is Media().
//
// The protocol has no reply to a registration. RegisterMedia learns that it
// took effect the only way a client can: a call to oneself is answered
// busy once media is bound and refused before; it asks every 10 ms, within
// ctx and Options.Timeout. So call it while not ringing or in a call (the
// server refuses every call then). A refused QUIC registration fails with
// its transport.Refusal (a stream reset code); a refused TCP registration
// shows as the server closing the media connection.
func (c *Client) RegisterMedia(ctx context.Context) error {
	sid, user, err := c.session()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	c.mu.Lock()
	old := c.media
	c.media = nil
	c.mu.Unlock()
	if old != nil {
		// Close the old channel first, as deployed clients do, and wait until
		// the server has let go of it: otherwise the check below could see
		// the old registration, whose end the server may handle only after
		// the new one (and then have none).
		old.Close()
		if err := c.confirmMediaGone(ctx, user); err != nil {
			return err
		}
	}
	link, err := c.openMedia(ctx, sid)
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	m := newMedia(link, c.o.Transport == QUICDatagram, c.o.Timeout)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		m.Close()
		return ErrClosed
	}
	c.media = m
	c.mu.Unlock()
	if err := c.confirmMedia(ctx, m, user); err != nil {
		c.mu.Lock()
		if c.media == m {
			c.media = nil
		}
		c.mu.Unlock()
		m.Close()
		return err
	}
	return nil
}

// openMedia connects a media channel and sends its registration.
func (c *Client) openMedia(ctx context.Context, sid string) (mediaLink, error) {
	reg := timestamp() + "|" + sid
	deadline := time.Now().Add(c.o.Timeout)
	if c.quic == nil {
		var conn, sock net.Conn
		err := dialRetrying(ctx, &c.o, func(ctx context.Context) (err error) {
			conn, sock, err = dialTLS(ctx, &c.o, c.pin, c.o.MediaPort)
			return err
		})
		if err != nil {
			return nil, err
		}
		conn.SetWriteDeadline(deadline)
		if _, err := conn.Write([]byte(reg)); err != nil { // one record
			conn.Close()
			return nil, fmt.Errorf("send registration: %w", err)
		}
		return newTLSMedia(conn, sock), nil
	}
	st, err := c.quic.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open media stream: %w", err)
	}
	if c.o.Transport == QUICDatagram {
		reg += "|datagram"
	}
	st.SetWriteDeadline(deadline)
	if _, err := st.Write([]byte(reg + "\n")); err != nil {
		closeStream(st)
		return nil, fmt.Errorf("send registration: %w", err)
	}
	if c.o.Transport == QUICDatagram {
		return &datagramMedia{conn: c.quic.conn, st: st}, nil
	}
	return newStreamMedia(st), nil
}

// confirmMedia waits until m is bound: a call to oneself is answered busy
// with media bound and invalid without.
func (c *Client) confirmMedia(ctx context.Context, m *Media, user string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		r, err := c.request(ctx, "call", user)
		if err != nil {
			if merr := m.Err(); merr != nil {
				return registrationError(merr)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("media registration did not take effect within %v (is a call ringing or up?)", c.o.Timeout)
			}
			return err
		}
		if res, err := callResult(r, user); err == nil && res == Busy {
			return nil
		} else if !r.invalid() {
			return fmt.Errorf("media registration check: unexpected reply %q", r)
		}
		select {
		case <-m.Done():
			return registrationError(m.Err())
		case <-ctx.Done():
			return fmt.Errorf("media registration did not take effect within %v (is a call ringing or up?)", c.o.Timeout)
		case <-tick.C:
		}
	}
}

// confirmMediaGone waits until a call to oneself is refused (no media
// bound) instead of answered busy (media bound).
func (c *Client) confirmMediaGone(ctx context.Context, user string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		r, err := c.request(ctx, "call", user)
		if err != nil {
			return fmt.Errorf("media: waiting for the server to drop the old media channel: %w", err)
		}
		if r.invalid() {
			return nil
		}
		if res, err := callResult(r, user); err != nil || res != Busy {
			return fmt.Errorf("media registration check: unexpected reply %q", r)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("media: the server kept the old media channel for %v", c.o.Timeout)
		case <-tick.C:
		}
	}
}

func registrationError(err error) error {
	if errors.Is(err, ErrMediaEnded) {
		return errors.New("media registration refused: the server closed the media connection " +
			"(clock off, session ended, or not from the command connection's IP address)")
	}
	return err
}
