package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// eventQueue is how many notifications a Client holds for an application
// that does not read Events; beyond that the oldest are dropped.
const eventQueue = 64

// Client is one user's connection to a dtcall server over TCP or QUIC. Its
// methods are safe for concurrent use. Requests are answered in the order
// they were sent; notifications arrive on Events.
type Client struct {
	o   Options
	pin pin

	cmd     cmdChannel
	quic    *quicLink  // nil over TCP
	tcpConn net.Conn   // the command connection's TCP socket; nil over QUIC
	watch   *callWatch // in-call liveness, see liveness.go

	// wmu serializes command writes, so that pending is in wire order.
	wmu sync.Mutex

	// pmu guards pending, readErr and lostErr.
	pmu     sync.Mutex
	pending []*pending // requests waiting for their reply, in wire order
	readErr error      // why readLoop ended; set once
	lostErr error      // set by lose: why the channel was given up

	readDone chan struct{} // closed when readLoop ends

	events   chan Event // filled by readLoop, closed when it ends
	callPeer string     // owned by readLoop: the party of the answered call

	// mu guards the fields below.
	mu     sync.Mutex
	user   string
	sid    string
	media  *Media
	closed bool

	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup // readLoop, keepaliveLoop, watchLoop
}

// pending is a request waiting for its reply.
type pending struct {
	// silent is an accept, reject, end or timeout: the server answers it
	// only when it refuses it (invalid). A later request's reply proves it
	// was carried out.
	silent bool
	ch     chan result // buffered: the reader never blocks
}

type result struct {
	msg message
	ok  bool // silent request carried out
	err error
}

// Dial connects the command channel (a TLS connection to the command port,
// or a QUIC connection and its command stream), checking the server's
// certificate against the pin. It does not log in. ctx and o.Timeout bound
// the dial and handshake, retries included.
//
// A dial the server refused before the session began (QUIC
// CONNECTION_REFUSED: a connection limit, or a banned source; TCP
// connection refused, or reset or closed during the TLS handshake: too
// many handshakes from one source) or that got no answer within
// o.DialTimeout is tried again, up to o.DialRetries times, after a random
// wait of up to o.RetryBackoff, doubling each time up to
// o.RetryMaxBackoff (exponential backoff with full jitter), so that
// clients refused together, as in a reconnect storm after a restart, come
// back spread out. A certificate or pin mismatch is not retried. Dial
// returns the last attempt's error. A login the server refuses is never
// retried: the server answers a wrong password and a login it throttled
// alike (resp|invalid), and Login cannot tell them apart.
func Dial(ctx context.Context, o Options) (*Client, error) {
	o.setDefaults()
	if err := o.check(); err != nil {
		return nil, err
	}
	p, err := o.loadPin()
	if err != nil {
		return nil, err
	}
	c := newClient(o, p)
	err = dialRetrying(ctx, &c.o, func(ctx context.Context) error {
		if o.Transport.isQUIC() {
			link, st, err := dialQUIC(ctx, &c.o, p)
			if err == nil {
				c.quic, c.cmd = link, newLineChannel(st)
			}
			return err
		}
		conn, raw, err := dialTLS(ctx, &c.o, p, o.CommandPort)
		if err == nil {
			c.cmd, c.tcpConn = newRecordChannel(conn), raw
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	c.wg.Go(c.readLoop)
	c.wg.Go(c.watchLoop)
	if o.Keepalive > 0 {
		c.wg.Go(c.keepaliveLoop)
	}
	return c, nil
}

// newClient returns a Client with no channel yet.
func newClient(o Options, p pin) *Client {
	return &Client{
		o:        o,
		pin:      p,
		events:   make(chan Event, eventQueue),
		closing:  make(chan struct{}),
		readDone: make(chan struct{}),
		watch:    newCallWatch(),
	}
}

// Transport is the transport the client was dialed with.
func (c *Client) Transport() Transport { return c.o.Transport }

// readLoop reads every message of the command channel: replies go to the
// oldest pending request, notifications to Events. It ends when the
// channel fails or Close closes it, failing the requests still pending.
func (c *Client) readLoop() {
	defer close(c.readDone)
	defer close(c.events)
	for {
		b, err := c.cmd.readMessage()
		if err != nil {
			c.endRequests(err)
			if c.quic != nil {
				// The session is over. Closing the connection tells a
				// draining server at once that its last notices were read.
				c.quic.conn.CloseWithError(0, "")
			}
			return
		}
		c.watch.heardNow()
		m, ok := parseMessage(b)
		if !ok {
			continue // PROTOCOL.md: clients drop what does not split into 4 fields
		}
		if m.isReply() {
			c.answer(m)
			continue
		}
		if ev, ok := eventOf(m); ok {
			c.notify(ev)
		}
	}
}

// endRequests records why the channel ended and fails every pending
// request with it.
func (c *Client) endRequests(err error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	c.pmu.Lock()
	switch {
	case closed:
		err = ErrClosed
	case c.lostErr != nil:
		err = c.lostErr
	case errors.Is(err, syscall.ETIMEDOUT): // TCP: the kernel gave up on the server
		err = fmt.Errorf("%w: %v", ErrLostServer, readError(err))
	default:
		err = readError(err)
	}
	c.readErr = err
	ps := c.pending
	c.pending = nil
	c.pmu.Unlock()
	for _, p := range ps {
		p.ch <- result{err: err}
	}
}

// answer hands a reply to the oldest pending request. Silent requests
// before it were carried out, unless the reply is their refusal.
func (c *Client) answer(m message) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	for len(c.pending) > 0 {
		p := c.pending[0]
		c.pending = c.pending[1:]
		if p.silent && !m.invalid() {
			p.ch <- result{ok: true}
			continue
		}
		p.ch <- result{msg: m}
		return
	}
	// A reply nobody asked for: dropped.
}

// notify queues an event, dropping the oldest one when the application is
// far behind, so that replies keep flowing.
func (c *Client) notify(ev Event) {
	switch ev.Kind {
	case Started:
		c.callPeer = ev.Peer
		c.watch.set(ev.Peer)
	case Dropped:
		ev.Peer, c.callPeer = c.callPeer, ""
		c.watch.set("")
	case Ended:
		c.callPeer = ""
		c.watch.set("")
	}
	for {
		select {
		case c.events <- ev:
			return
		default:
		}
		select {
		case <-c.events:
		default:
		}
	}
}

// Events delivers the server's notifications (Incoming, Started, Rejected,
// Ended, TimedOut, Dropped) in order. It is closed when the command channel
// ends (Close, a lost connection, or a login of the same user elsewhere);
// Err then says why. The client holds up to 64 unread events and then drops
// the oldest: read them.
func (c *Client) Events() <-chan Event { return c.events }

// Err is nil while the command channel works, then why it ended.
func (c *Client) Err() error {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.readErr
}

// timestamp is the client clock as commands carry it: Unix seconds.
func timestamp() string { return strconv.FormatInt(time.Now().Unix(), 10) }

// send writes msgs as one message each, in order, after queueing a pending
// request for each non-nil slot in ps. A write error ends the channel.
func (c *Client) send(ps []*pending, msgs ...string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.pmu.Lock()
	if err := c.readErr; err != nil {
		c.pmu.Unlock()
		return err
	}
	for _, p := range ps {
		if p != nil {
			c.pending = append(c.pending, p)
		}
	}
	c.pmu.Unlock()
	deadline := time.Now().Add(c.o.Timeout)
	for _, msg := range msgs {
		if err := c.cmd.writeMessage([]byte(msg), deadline); err != nil {
			c.cmd.close() // the reader fails what is pending
			return fmt.Errorf("send command: %w", err)
		}
	}
	return nil
}

// wait waits for p's reply within ctx and Options.Timeout. A request
// given up on stays queued, so that its reply, if it comes, is not taken
// for a later request's.
func (c *Client) wait(ctx context.Context, p *pending) (result, error) {
	t := time.NewTimer(c.o.Timeout)
	defer t.Stop()
	select {
	case r := <-p.ch:
		return r, r.err
	case <-t.C:
		return result{}, ErrTimeout
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
}

// request sends ts|verb|arg|sid and returns its reply.
func (c *Client) request(ctx context.Context, verb, arg string) (message, error) {
	sid, _, err := c.session()
	if err != nil {
		return message{}, err
	}
	p := &pending{ch: make(chan result, 1)}
	if err := c.send([]*pending{p}, timestamp()+"|"+verb+"|"+arg+"|"+sid); err != nil {
		return message{}, err
	}
	r, err := c.wait(ctx, p)
	if err != nil {
		return message{}, fmt.Errorf("%s %s: %w", verb, arg, err)
	}
	return r.msg, nil
}

// silentRequest sends a command the server answers only when refusing it
// (accept, reject, end, timeout), followed by a lookup of the client's own
// name as a barrier: if the lookup's answer comes first, the command was
// carried out.
func (c *Client) silentRequest(ctx context.Context, verb, arg string) error {
	sid, user, err := c.session()
	if err != nil {
		return err
	}
	p := &pending{silent: true, ch: make(chan result, 1)}
	barrier := &pending{ch: make(chan result, 1)}
	ts := timestamp()
	if err := c.send([]*pending{p, barrier},
		ts+"|"+verb+"|"+arg+"|"+sid, ts+"|lookup|"+user+"|"+sid); err != nil {
		return err
	}
	r, err := c.wait(ctx, p)
	switch {
	case err != nil:
		return fmt.Errorf("%s %s: %w", verb, arg, err)
	case r.ok:
		return nil
	}
	return refused(verb, arg, r.msg)
}

func refused(verb, arg string, m message) *RefusedError {
	return &RefusedError{Command: verb, Peer: arg, Skew: time.Since(m.serverTime()).Truncate(time.Second)}
}

// session returns the session id and user name, or ErrNotLoggedIn.
func (c *Client) session() (sid, user string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return "", "", ErrClosed
	}
	if c.sid == "" {
		return "", "", ErrNotLoggedIn
	}
	return c.sid, c.user, nil
}

// keepaliveLoop sends a keepalive every Options.Keepalive until Close.
func (c *Client) keepaliveLoop() {
	t := time.NewTicker(c.o.Keepalive)
	defer t.Stop()
	for {
		select {
		case <-c.closing:
			return
		case <-t.C:
			c.Keepalive()
		}
	}
}

// Keepalive sends a keepalive ("D") on the command channel and, over TCP,
// on the media connection. The client sends one every Options.Keepalive
// by itself; the server closes a connection that sends nothing for 10
// minutes. (Over QUIC, QUIC's own keep-alives also run every 15 s.)
func (c *Client) Keepalive() error {
	if err := c.send(nil, "D"); err != nil {
		return err
	}
	if m := c.Media(); m != nil {
		return m.keepalive()
	}
	return nil
}

// Migrate moves a QUIC client's connection to a new UDP socket on
// localAddr (an IP, or IP:port; port 0 picks one): it probes the new path
// and switches to it. Calls and media carry on. The old socket stays open
// until Close. Over TCP it returns ErrNotQUIC.
func (c *Client) Migrate(ctx context.Context, localAddr string) error {
	if c.quic == nil {
		return ErrNotQUIC
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	return c.quic.migrate(ctx, localAddr)
}

// Close closes the media channel and the command channel (over QUIC, the
// whole connection and its sockets), and waits for every goroutine of the
// client. The server ends the session: a call in progress is dropped for
// the other party. Idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		m := c.media
		c.media = nil
		c.mu.Unlock()
		close(c.closing)
		if m != nil {
			m.Close()
		}
		c.cmd.close()
		if c.quic != nil {
			c.quic.close()
		}
		c.wg.Wait()
	})
	return nil
}

var errNoSession = errors.New("server answered login without a valid session id")
