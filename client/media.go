package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/transport"
)

// ErrMediaEnded is the error of a Media whose connection or stream the
// server closed: it was replaced by a newer registration, its session
// ended, it fell too far behind, or (legacy) its registration was refused.
var ErrMediaEnded = errors.New("the server closed the media channel")

// mediaQueue is the number of received chunks (stream modes) or datagrams
// a Media holds for its reader. In stream modes a full queue stops reading
// the socket (the server then drops or cuts off a receiver that cannot keep
// up, as it should); in datagram mode the oldest datagram is dropped.
const mediaQueue = 64

// Media is one registered media channel: a legacy TLS media connection, a
// QUIC media stream, or a QUIC datagram-mode registration (the stream is
// only its anchor). Its methods are safe for concurrent use; ReadMedia and
// WriteMedia may run at the same time in different goroutines.
//
// In the stream modes media is a byte stream: the server relays bytes in
// order but not the boundaries of the writes (it merges queued chunks), so
// ReadMedia returns whatever arrived. In datagram mode each ReadMedia
// returns one datagram and each WriteMedia sends one.
type Media struct {
	link     mediaLink
	datagram bool
	timeout  time.Duration // per write

	in      chan []byte // received media, filled by readLoop
	dropped atomic.Int64

	// In the stream modes the first ReadMedia takes reading over from
	// readLoop (takeOver); readLoop only watches until then.
	handover atomic.Bool   // asks readLoop to stop at its next read error
	loopDone chan struct{} // closed when readLoop returns
	rmu      sync.Mutex    // serializes ReadMedia once it reads the link
	direct   bool          // under rmu: ReadMedia reads the link
	stash    [][]byte      // under rmu: what readLoop had queued, to return first

	wmu   sync.Mutex   // serializes writes
	wrote atomic.Int64 // when a write last went out, ns after mediaEpoch (liveness.go)

	ctx    context.Context // cancelled by fail
	cancel context.CancelFunc
	once   sync.Once
	failed chan struct{} // closed by fail; err is set before
	err    error
	wg     sync.WaitGroup // readLoop and anchorLoop
}

// mediaLink is the socket side of a Media.
type mediaLink interface {
	// read blocks for the next chunk or datagram and returns a fresh slice.
	// It returns when the link is closed or ctx ends.
	read(ctx context.Context) ([]byte, error)
	write(p []byte, deadline time.Time) error
	// keepalive sends a keepalive where the link has one (legacy "D").
	keepalive(deadline time.Time) error
	close()
	// anchor returns the stream to watch in datagram mode, else nil.
	anchor() *quicgo.Stream
	// maxDatagram is the largest datagram payload now, 0 in stream modes.
	maxDatagram() int
}

func newMedia(link mediaLink, datagram bool, timeout time.Duration) *Media {
	m := &Media{
		link:     link,
		datagram: datagram,
		timeout:  timeout,
		in:       make(chan []byte, mediaQueue),
		failed:   make(chan struct{}),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.loopDone = make(chan struct{})
	m.wg.Go(func() {
		defer close(m.loopDone)
		m.readLoop()
	})
	if st := link.anchor(); st != nil {
		m.wg.Go(func() { m.anchorLoop(st) })
	}
	return m
}

// readLoop moves received media to m.in until the link fails, or in the
// stream modes until ReadMedia takes over (takeOver).
func (m *Media) readLoop() {
	for {
		b, err := m.link.read(m.ctx)
		if err != nil {
			if m.handover.Load() && isTimeout(err) {
				return // interrupted by takeOver, not failed
			}
			m.fail(mediaError(err))
			return
		}
		if m.datagram {
			m.deliverDropOldest(b)
			continue
		}
		select {
		case m.in <- b:
		case <-m.ctx.Done():
			return
		}
	}
}

// deliverDropOldest queues a datagram; when the reader lags, the oldest
// one goes (late voice is worse than lost voice).
func (m *Media) deliverDropOldest(b []byte) {
	for {
		select {
		case m.in <- b:
			return
		default:
		}
		select {
		case <-m.in:
			m.dropped.Add(1)
		default:
		}
	}
}

// anchorLoop watches the anchor stream of a datagram-mode registration:
// nothing arrives on it; it ends when the server refuses the registration
// (a reset with the refusal code) or closes it.
func (m *Media) anchorLoop(st *quicgo.Stream) {
	var buf [64]byte
	for {
		if _, err := st.Read(buf[:]); err != nil {
			m.fail(mediaError(err))
			return
		}
	}
}

// mediaError turns a read error into what the application should see: a
// refused QUIC registration becomes its transport.Refusal, a closed
// channel ErrMediaEnded.
func mediaError(err error) error {
	var se *quicgo.StreamError
	if errors.As(err, &se) && se.Remote && se.ErrorCode >= 0x101 && se.ErrorCode <= 0x1ff {
		return transport.Refusal(se.ErrorCode)
	}
	if errors.Is(err, io.EOF) || (errors.As(err, &se) && se.Remote) {
		return ErrMediaEnded
	}
	var ae *quicgo.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		return fmt.Errorf("%w: the connection closed: %v", ErrMediaEnded, err)
	}
	return fmt.Errorf("media: %w", err)
}

// fail ends m with err (the first error wins) and closes the link, which
// unblocks readLoop and anchorLoop.
func (m *Media) fail(err error) {
	m.once.Do(func() {
		m.err = err
		close(m.failed)
	})
	m.cancel()
	m.link.close()
}

// ReadMedia returns the next received media: a chunk of the byte stream
// (stream modes) or one datagram payload (datagram mode). Media received
// before the channel failed is returned first; then the error
// (ErrMediaEnded when the server closed it, a transport.Refusal when it
// refused the QUIC registration, ErrClosed after Close). It blocks until
// media arrives, the channel fails or ctx ends.
func (m *Media) ReadMedia(ctx context.Context) ([]byte, error) {
	if dr, ok := m.link.(directReader); ok && !m.datagram {
		return m.readDirect(ctx, dr)
	}
	select {
	case b := <-m.in:
		return b, nil
	default:
	}
	select {
	case b := <-m.in:
		return b, nil
	case <-m.failed:
		select {
		case b := <-m.in:
			return b, nil
		default:
			return nil, m.err
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// directReader is a stream link that ReadMedia can read itself: a
// goroutine hand-off less per chunk than through readLoop, which matters
// to a load generator running hundreds of calls.
type directReader interface {
	// readDirect is read, returning ctx's error when ctx ends first (the
	// link stays usable).
	readDirect(ctx context.Context) ([]byte, error)
	// interrupt makes a blocked read return a timeout; resume undoes it.
	interrupt()
	resume()
}

// readDirect is ReadMedia in the stream modes: after taking reading over
// from readLoop, it returns what readLoop had queued, then reads the link.
func (m *Media) readDirect(ctx context.Context, dr directReader) ([]byte, error) {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	if !m.direct {
		m.takeOver(dr)
	}
	if len(m.stash) > 0 {
		b := m.stash[0]
		m.stash[0] = nil
		m.stash = m.stash[1:]
		return b, nil
	}
	select {
	case <-m.failed:
		return nil, m.err
	default:
	}
	b, err := dr.readDirect(ctx)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil, err
		}
		m.fail(mediaError(err))
		return nil, m.err
	}
	return b, nil
}

// takeOver stops readLoop (its blocked read is interrupted) and keeps what
// it had queued. Until the first ReadMedia, readLoop watches the link so
// that Done reports a refused or closed channel the application has not
// read yet; from then on, ReadMedia does. m.rmu must be held.
func (m *Media) takeOver(dr directReader) {
	m.handover.Store(true)
	dr.interrupt()
	for waiting := true; waiting; {
		select {
		case b := <-m.in: // readLoop may be blocked handing one over
			m.stash = append(m.stash, b)
		case <-m.loopDone:
			waiting = false
		}
	}
	for queued := true; queued; {
		select {
		case b := <-m.in:
			m.stash = append(m.stash, b)
		default:
			queued = false
		}
	}
	dr.resume()
	m.direct = true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// WriteMedia sends p: as one write (one TLS record on the legacy front, at
// most 16 KiB each) in the stream modes, as one datagram in datagram mode.
// A datagram larger than MaxDatagram fails with an error wrapping
// *quicgo.DatagramTooLargeError; nothing is sent. Over TCP, a write of
// exactly "D" is a keepalive the server never relays. Each write has
// Options.Timeout.
func (m *Media) WriteMedia(p []byte) error {
	select {
	case <-m.failed:
		return m.err
	default:
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	now := time.Now()
	if err := m.link.write(p, now.Add(m.timeout)); err != nil {
		m.failIfLost(err)
		return fmt.Errorf("write media: %w", err)
	}
	m.wrote.Store(int64(now.Sub(mediaEpoch)))
	return nil
}

// failIfLost ends m when a write failed because the kernel gave up on the
// connection (ETIMEDOUT: TCP_USER_TIMEOUT or the retransmissions ran out),
// so that Err says so even when nobody reads m; the in-call watch takes
// that for the lost server (liveness.go).
func (m *Media) failIfLost(err error) {
	if errors.Is(err, syscall.ETIMEDOUT) {
		m.fail(mediaError(err))
	}
}

// mediaEpoch is what Media.wrote counts from (monotonic).
var mediaEpoch = time.Now()

// wroteWithin reports whether something went out on m within d.
func (m *Media) wroteWithin(d time.Duration) bool {
	return time.Since(mediaEpoch)-time.Duration(m.wrote.Load()) < d
}

// tcpSocket is the TCP socket under a legacy media connection; nil over
// QUIC.
func (m *Media) tcpSocket() net.Conn {
	if b, ok := m.link.(*byteMedia); ok {
		return b.sock
	}
	return nil
}

// MaxDatagram is the largest payload WriteMedia sends as one datagram right
// now (it grows as the path's MTU is discovered); 0 in the stream modes.
func (m *Media) MaxDatagram() int { return m.link.maxDatagram() }

// Datagram reports whether m is in datagram mode.
func (m *Media) Datagram() bool { return m.datagram }

// Dropped is the number of received datagrams dropped because the reader
// fell more than 64 behind.
func (m *Media) Dropped() int64 { return m.dropped.Load() }

// Done is closed when m has failed or was closed; Err then says why.
func (m *Media) Done() <-chan struct{} { return m.failed }

// Err is nil while m works, then why it stopped.
func (m *Media) Err() error {
	select {
	case <-m.failed:
		return m.err
	default:
		return nil
	}
}

// Close closes the media channel and waits for its goroutines. During a
// call the server then tells the other party call|drop after a short grace
// unless a new registration follows. Idempotent.
func (m *Media) Close() error {
	m.fail(ErrClosed)
	m.wg.Wait()
	return nil
}

func (m *Media) keepalive() error {
	select {
	case <-m.failed:
		return m.err
	default:
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	now := time.Now()
	if err := m.link.keepalive(now.Add(m.timeout)); err != nil {
		m.failIfLost(err)
		return err
	}
	m.wrote.Store(int64(now.Sub(mediaEpoch)))
	return nil
}

// byteMedia is media as a byte stream: a legacy media connection, or a
// QUIC media stream in stream mode.
type byteMedia struct {
	rw interface {
		io.ReadWriter
		SetReadDeadline(time.Time) error
		SetWriteDeadline(time.Time) error
	}
	buf    []byte   // owned by the reader
	jbyte  bool     // legacy: the keepalive is a "D" record
	sock   net.Conn // legacy: the TCP socket under the TLS connection
	closer func()

	// cmu guards reads: each readDirect with a context that can end is
	// numbered, so that a context ending after its read returned cannot
	// put a deadline in the past under a later read.
	cmu   sync.Mutex
	reads uint64
}

// newTLSMedia is a legacy media connection, conn over the TCP socket sock.
func newTLSMedia(conn, sock net.Conn) *byteMedia {
	return &byteMedia{rw: conn, buf: make([]byte, maxRecord), jbyte: true, sock: sock, closer: func() { conn.Close() }}
}

// newStreamMedia is a QUIC media stream in stream mode.
func newStreamMedia(st *quicgo.Stream) *byteMedia {
	return &byteMedia{rw: st, buf: make([]byte, maxRecord), closer: func() { closeStream(st) }}
}

func (b *byteMedia) read(context.Context) ([]byte, error) {
	for {
		n, err := b.rw.Read(b.buf)
		if n > 0 {
			return append([]byte(nil), b.buf[:n]...), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// readDirect is read, ended early by ctx through a read deadline in the
// past.
func (b *byteMedia) readDirect(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ctx.Done() == nil {
		return b.read(ctx)
	}
	b.cmu.Lock()
	b.reads++
	this := b.reads
	b.cmu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		b.cmu.Lock()
		defer b.cmu.Unlock()
		if b.reads == this {
			b.rw.SetReadDeadline(longAgo)
		}
	})
	p, err := b.read(ctx)
	if !stop() { // ctx ended: its deadline may be set; this read is over
		b.cmu.Lock()
		b.reads++
		b.rw.SetReadDeadline(time.Time{})
		b.cmu.Unlock()
		if err != nil {
			return nil, ctx.Err()
		}
	}
	return p, err
}

// longAgo is a deadline in the past: a read blocked on it returns now.
var longAgo = time.Unix(1, 0)

func (b *byteMedia) interrupt() { b.rw.SetReadDeadline(longAgo) }
func (b *byteMedia) resume()    { b.rw.SetReadDeadline(time.Time{}) }

func (b *byteMedia) write(p []byte, deadline time.Time) error {
	b.rw.SetWriteDeadline(deadline)
	_, err := b.rw.Write(p)
	return err
}

// keepalive sends the legacy "D" record; QUIC keeps itself alive.
func (b *byteMedia) keepalive(deadline time.Time) error {
	if !b.jbyte {
		return nil
	}
	return b.write([]byte{'D'}, deadline)
}

func (b *byteMedia) close()                 { b.closer() }
func (b *byteMedia) anchor() *quicgo.Stream { return nil }
func (b *byteMedia) maxDatagram() int       { return 0 }

// closeStream ends both directions of a stream of ours; pending reads and
// writes return.
func closeStream(st *quicgo.Stream) {
	st.CancelRead(0)
	st.CancelWrite(0)
}

// datagramMedia is a datagram-mode registration: media in DATAGRAM frames,
// the stream as anchor.
type datagramMedia struct {
	conn *quicgo.Conn
	st   *quicgo.Stream
}

func (d *datagramMedia) read(ctx context.Context) ([]byte, error) {
	return d.conn.ReceiveDatagram(ctx)
}

func (d *datagramMedia) write(p []byte, _ time.Time) error { return d.conn.SendDatagram(p) }
func (d *datagramMedia) keepalive(time.Time) error         { return nil }
func (d *datagramMedia) close()                            { closeStream(d.st) }
func (d *datagramMedia) anchor() *quicgo.Stream            { return d.st }

// maxDatagram asks quic-go: a payload too large for any packet is refused
// with the current maximum, and nothing is sent.
func (d *datagramMedia) maxDatagram() int {
	var tooLarge *quicgo.DatagramTooLargeError
	if err := d.conn.SendDatagram(make([]byte, 1<<16)); errors.As(err, &tooLarge) {
		return int(tooLarge.MaxDatagramPayloadSize)
	}
	return 0
}
