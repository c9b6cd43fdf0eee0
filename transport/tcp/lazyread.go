package tcp

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtcall/dtcall/transport"
)

// An idle legacy connection should not hold a 16 KiB record buffer: a
// record is read whole (one message is one record), but most connections
// wait for minutes between records. So a crypto/tls connection borrows its
// buffer from spareRecords when data comes and gives it back once a read
// has waited idleRead for nothing; then it waits for the socket to become
// readable without a buffer (readWait).
//
// That is sound because crypto/tls holds no whole record once a read
// times out (a new connection starts with a buffer, for whatever the
// handshake read ahead): it returns a whole record's plaintext as soon as the record
// is complete (our buffer holds the largest), so a read that timed out
// has at most part of a record, and the rest can only come from the
// socket. A timeout is not sticky in crypto/tls (the connection reads on).
// The OpenSSL engine buffers in its own way and keeps its buffer.

// idleRead is how long a read waits holding its buffer: longer than the
// gaps between a call's frames, so a call keeps its buffers.
const idleRead = time.Second

// spareRecords holds record buffers that idle connections gave back, for
// connections that wake; what does not fit goes to the collector. Not a
// sync.Pool: that keeps every buffer a burst put back until two
// collections, and an idle server runs none, so two thousand users who
// logged in at once would keep a burst's worth of 16 KiB buffers.
var spareRecords = make(chan *[]byte, 64)

// getRecord returns a spare record buffer or a new one.
func getRecord() *[]byte {
	select {
	case b := <-spareRecords:
		return b
	default:
		b := make([]byte, transport.MaxMessage)
		return &b
	}
}

// putRecord gives b back: kept as a spare, or left to the collector.
func putRecord(b *[]byte) {
	select {
	case spareRecords <- b:
	default:
	}
}

// lazyRead is a connection's borrowed record buffer and read deadlines.
// It lives inside its recordConn, the fields every record touches first,
// so that a read does not fetch one more object into the cache.
type lazyRead struct {
	// The reader's own, touched by every read. buf is the borrowed buffer
	// (nil while idle), *bufp, kept here so that a read does not load it
	// through bufp.
	buf  []byte
	skip int // reads left before armShort looks at the clock again
	// armed is set while the short deadline is on the socket; setDeadline
	// clears it (it puts the core's on instead), and armShort then arms
	// at once rather than after skip more reads.
	armed atomic.Bool
	bufp  *[]byte
	idles int // how often the buffer went back for want of data

	wait readWait

	mu       sync.Mutex
	deadline time.Time // the core's read deadline
	short    time.Time // the deadline on the socket during a read: at most the core's
}

// init readies l for sc over raw; false when sc's buffering is not
// crypto/tls's or raw cannot be polled: the connection then keeps its own
// buffer.
func (l *lazyRead) init(sc secureConn, raw net.Conn) bool {
	if _, std := sc.(*tls.Conn); !std {
		return false
	}
	w, ok := newReadWait(raw)
	if !ok {
		return false
	}
	l.wait = w
	// Born holding a buffer: the handshake's last read may have taken the
	// client's first record along, which only a read can return.
	l.borrow()
	return true
}

// borrow takes a record buffer.
func (l *lazyRead) borrow() {
	l.bufp = getRecord()
	l.buf = *l.bufp
}

// giveBack returns the record buffer.
func (l *lazyRead) giveBack() {
	putRecord(l.bufp)
	l.bufp, l.buf = nil, nil
}

// read reads one record with a borrowed buffer, and returns the buffer's
// record bytes, valid until the next read.
func (l *lazyRead) read(sc secureConn) ([]byte, error) {
	for {
		if l.buf == nil {
			if err := l.wait.readable(); err != nil {
				return nil, err
			}
			l.borrow()
		}
		l.armShort(sc)
		n, err := sc.Read(l.buf)
		if n > 0 || err == nil || !isTimeout(err) || l.pastDeadline() {
			return l.buf[:n], err
		}
		// Nothing came for idleRead: give the buffer back and wait for
		// data without it.
		l.giveBack()
		l.restore(sc) // the next record arms again
		l.idles++
	}
}

// armEvery is how many reads share one look at the clock in armShort. A
// call's frames come every 20 ms, so a call looks every 160 ms, well
// within the idleRead/2 that armShort keeps in hand. A connection whose
// records come slower may let the short deadline pass between looks: a
// read then times out once, gives its buffer back and borrows it again
// at the next record, as after any pause.
const armEvery = 8

// armShort puts a deadline idleRead ahead on the socket (at most the
// core's), resetting it only when less than half of it is left, so that a
// busy connection does not move a timer per record, nor read the clock
// and take the lock for every record.
func (l *lazyRead) armShort(sc secureConn) {
	if l.skip > 0 && l.armed.Load() {
		l.skip--
		return
	}
	l.skip = armEvery - 1
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.short.IsZero() && l.short.Sub(now) > idleRead/2 {
		return
	}
	l.short = now.Add(idleRead)
	if !l.deadline.IsZero() && l.deadline.Before(l.short) {
		l.short = l.deadline
	}
	sc.SetReadDeadline(l.short)
	l.armed.Store(true)
}

// restore puts the core's deadline back on the socket, for the wait
// without a buffer.
func (l *lazyRead) restore(sc secureConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.short = time.Time{}
	l.armed.Store(false)
	sc.SetReadDeadline(l.deadline)
}

// setDeadline records the core's read deadline and applies it at once
// (a deadline in the past must fail a blocked read now).
func (l *lazyRead) setDeadline(sc secureConn, t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deadline = t
	l.short = time.Time{} // the next read arms again, within t
	l.armed.Store(false)
	return sc.SetReadDeadline(t)
}

// pastDeadline reports whether the core's deadline has passed: a timeout
// then is the core's, not idleness.
func (l *lazyRead) pastDeadline() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.deadline.IsZero() && !time.Now().Before(l.deadline)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
