package client

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Liveness during a call (PROTOCOL.md, "Liveness during a call"): a phone in
// a call must learn within seconds that the server, or the path to it, is
// gone. Idle, the client relies on the cheap keep-alives (QUIC's every 15 s,
// a "D" every Options.Keepalive over TCP).
//
//   - QUIC: the server sends a "D" line on the command stream every 250 ms
//     while a call is up. A client that hears nothing at all for lostAfter
//     takes the server for lost and closes the connection.
//   - TCP: while a call is up the client sets TCP_USER_TIMEOUT (Linux) on
//     its command and media connections, so that the kernel ends a
//     connection once what it sent goes unacknowledged for lostAfter, and
//     it keeps something in flight on the media connection: the call's
//     media, or a "D" record when no media went out for 250 ms. A media
//     connection the kernel ends that way (ETIMEDOUT) means the path is
//     gone. Without a media connection the "D" goes on the command
//     connection. A server process that dies closes its sockets at once.
//
// Media is 50 records a second each way, so a talking call sends no "D"
// at all: the server has nothing extra to read, decrypt and parse.

// ErrLostServer is the Err of a Client that heard nothing from its server
// for 1.5 s during a call (over TCP: whose connection the kernel ended
// because the server stopped acknowledging): the server or the path to it
// is gone. Events is closed; the call is over.
var ErrLostServer = errors.New("lost the server")

const (
	lostAfter   = 1500 * time.Millisecond // silence during a call that means the server is gone
	watchPeriod = 250 * time.Millisecond  // how often the watch looks (and, over TCP, sends "D")
)

// callWatch is the client's view of whether a call is up, and when it last
// heard from the server.
type callWatch struct {
	mu   sync.Mutex
	peer string // the answered call's other party; "" when none; guarded by mu

	wake  chan struct{} // cap 1: the call started or ended
	epoch time.Time     // heard counts from here (monotonic)
	heard atomic.Int64  // nanoseconds after epoch of the last message from the server
}

func newCallWatch() *callWatch {
	return &callWatch{wake: make(chan struct{}, 1), epoch: time.Now()}
}

// heardNow records a message from the server.
func (w *callWatch) heardNow() { w.heard.Store(int64(time.Since(w.epoch))) }

// silence is how long the server has been silent.
func (w *callWatch) silence() time.Duration {
	return time.Since(w.epoch) - time.Duration(w.heard.Load())
}

// set records the call's other party ("" when the call is over) and wakes
// the watch. With only, the call is cleared only if its party is only.
func (w *callWatch) set(peer string, only ...string) {
	w.mu.Lock()
	if len(only) > 0 && w.peer != only[0] {
		w.mu.Unlock()
		return
	}
	w.peer = peer
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *callWatch) inCall() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peer != ""
}

// watchLoop watches the server while a call is up (see the top of this
// file); idle, it sleeps until a call starts. It ends with the client.
func (c *Client) watchLoop() {
	var ticker *time.Ticker
	var tick <-chan time.Time
	var armed *Media // TCP: the media connection whose TCP_USER_TIMEOUT is set
	stop := func() {
		if ticker != nil {
			ticker.Stop()
			ticker, tick = nil, nil
		}
		if armed != nil {
			setUserTimeout(armed.tcpSocket(), false)
			armed = nil
		}
	}
	defer stop()
	for {
		select {
		case <-c.closing:
			return
		case <-c.readDone:
			return
		case <-c.watch.wake:
			inCall := c.watch.inCall()
			if c.tcpConn != nil {
				setUserTimeout(c.tcpConn, inCall)
			}
			switch {
			case inCall && ticker == nil:
				c.watch.heardNow()
				ticker = time.NewTicker(watchPeriod)
				tick = ticker.C
				if c.quic == nil {
					c.watchTCP(&armed)
				}
			case !inCall:
				stop()
			}
		case <-tick:
			if c.quic == nil {
				if c.watchTCP(&armed) {
					return
				}
				continue
			}
			if silent := c.watch.silence(); silent > lostAfter {
				c.lose(fmt.Errorf("%w: nothing from it for %v during a call", ErrLostServer, silent.Round(10*time.Millisecond)))
				return
			}
		}
	}
}

// watchTCP is one look at a TCP call's path (see the top of this file):
// it arms the media connection's TCP_USER_TIMEOUT (a new registration
// replaces the armed one), sends a "D" where nothing went out for
// watchPeriod, and reports whether the kernel ended the media connection
// for want of acknowledgements, after which the client is lost.
func (c *Client) watchTCP(armed **Media) (lost bool) {
	m := c.Media()
	if m != *armed {
		if *armed != nil {
			setUserTimeout((*armed).tcpSocket(), false)
		}
		if m != nil {
			setUserTimeout(m.tcpSocket(), true)
		}
		*armed = m
	}
	if m == nil || m.Err() != nil {
		c.send(nil, "D") // a failure ends the channel; readLoop reports it
	} else if !m.wroteWithin(watchPeriod) {
		m.keepalive() // a failure ends m, and says why
	}
	if m == nil {
		return false
	}
	if err := m.Err(); errors.Is(err, syscall.ETIMEDOUT) {
		c.lose(fmt.Errorf("%w: the media connection went unacknowledged during a call: %v", ErrLostServer, err))
		return true
	}
	return false
}

// lose ends the connection because the server is gone; err becomes Err.
func (c *Client) lose(err error) {
	c.pmu.Lock()
	if c.lostErr == nil {
		c.lostErr = err
	}
	c.pmu.Unlock()
	c.cmd.close()
	if c.quic != nil {
		c.quic.close()
	}
}
