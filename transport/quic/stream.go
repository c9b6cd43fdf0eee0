package quic

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/wire"
)

// lineStream frames a bidirectional stream as lines: each message ends with
// exactly one "\n" in both directions.
type lineStream struct {
	c  *client
	st *quicgo.Stream
	rd lazyReader // its buffer is owned by the reader
}

// maxLine bounds one line: a command is at most wire.MaxCommand bytes.
const maxLine = wire.MaxCommand + 1

// Read buffer sizes. A command stream holds one line at a time, so
// readLine's minimum will do; a media stream reads what arrived in chunks
// as large as the buffer, so it gets more. Either is borrowed only while
// data comes (lazyread.go).
const (
	commandBuffer = maxLine + 1
	mediaBuffer   = 2 * maxLine
)

// init makes l frame st, read through buffers of size bytes from spares
// (linger: see lazyReader). It sets the fields in place: a constructor
// returning a lineStream would build it on the stack of the goroutine
// that goes on to read the stream.
func (l *lineStream) init(c *client, st *quicgo.Stream, spares spareReaders, size int, linger bool) {
	l.c, l.st = c, st
	l.rd.init(c.srv, st, spares, size, linger)
}

// ReadMessage returns the next line without its "\n" (see readLine).
func (l *lineStream) ReadMessage() ([]byte, error) {
	br, err := l.rd.reader()
	if err != nil {
		return nil, err
	}
	line, err := readLine(br)
	if err != nil {
		l.rd.idle()
	}
	return line, err
}

// readLine returns the next line of br without its "\n". A line longer
// than a command is returned cut to maxLine+1 bytes (so the parser refuses
// it) and the rest of it is skipped. A last line without "\n" is not a
// message. br must have room for maxLine+1 bytes.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case err == nil:
		return line[:min(len(line)-1, maxLine+1)], nil
	case errors.Is(err, bufio.ErrBufferFull):
		long := append([]byte(nil), line[:maxLine+1]...)
		for errors.Is(err, bufio.ErrBufferFull) { // each pass consumes a buffer
			_, err = br.ReadSlice('\n')
		}
		if err != nil {
			return nil, err
		}
		return long, nil
	default:
		return nil, err
	}
}

// WriteMessage writes msg as one line, adding the "\n" unless msg has it
// (the invalid reply does; it is not doubled).
func (l *lineStream) WriteMessage(msg []byte) error {
	if !bytes.HasSuffix(msg, []byte{'\n'}) {
		msg = append(msg[:len(msg):len(msg)], '\n')
	}
	_, err := l.st.Write(msg)
	return err
}

func (l *lineStream) SetReadDeadline(t time.Time) error  { return l.rd.setDeadline(t) }
func (l *lineStream) SetWriteDeadline(t time.Time) error { return l.st.SetWriteDeadline(t) }
func (l *lineStream) RemoteAddr() netip.AddrPort         { return remoteAddr(l.c.qc) }

// Origin is the QUIC connection: a media stream must belong to the
// connection that logged in (it may have migrated to any address).
func (l *lineStream) Origin() any { return l.c.qc }

// KeptAlive: QUIC's keep-alives and idle timeout watch the peer; silence
// on a stream is normal.
func (l *lineStream) KeptAlive() {}

// commandStream is the command channel of a QUIC client.
type commandStream struct {
	lineStream
	probe         probeState  // owned by the core's writer (Probe)
	wroteDraining atomic.Bool // a message was written after the drain began
}

var (
	_ transport.Conn      = (*commandStream)(nil)
	_ transport.KeptAlive = (*commandStream)(nil)
	_ transport.Prober    = (*commandStream)(nil)
)

func newCommandStream(c *client, st *quicgo.Stream) *commandStream {
	cs := &commandStream{}
	cs.init(c, st, spareCommand, commandBuffer, false)
	return cs
}

// WriteMessage writes a reply as one line. A login's success reply marks
// the connection logged in first (its windows may grow and it may open
// media streams): the client learns its session id from this reply, so
// its media stream cannot arrive before the mark. A message written while
// the server drains is noted, for Close.
func (cs *commandStream) WriteMessage(msg []byte) error {
	if !cs.c.st.loggedIn.Load() && isLoginReply(msg) {
		cs.c.st.loggedIn.Store(true)
	}
	cs.noteWrite()
	return cs.lineStream.WriteMessage(msg)
}

// loginReply is what follows the server time in a login's success reply,
// servertime|resp|login|sessionid (wire.Reply).
var loginReply = []byte("|" + wire.KindResp + "|" + wire.SubLogin + "|")

// isLoginReply reports whether msg is a login's success reply.
func isLoginReply(msg []byte) bool {
	i := bytes.IndexByte(msg, '|')
	return i > 0 && bytes.HasPrefix(msg[i:], loginReply)
}

// probeState is what Probe remembers between probes.
type probeState struct {
	packets uint64    // packets received from the client at the last change
	heard   time.Time // when the count last changed
	last    time.Time // the last probe
}

// probeLine is what a probe writes: a keepalive line, which clients
// ignore, so that the client has something to acknowledge.
var probeLine = []byte("D\n")

// Probe checks that packets still arrive from the client (its own, or the
// acknowledgements of what we send) and sends a keepalive line for it to
// acknowledge. It fails once nothing arrived for the liveness limit. After
// a pause in probing (between calls) the count starts afresh.
func (cs *commandStream) Probe() error {
	now := time.Now()
	n := cs.c.qc.ConnectionStats().PacketsReceived
	p, limit := &cs.probe, cs.c.srv.callLiveness
	if n != p.packets || now.Sub(p.last) > limit {
		p.packets, p.heard = n, now
	}
	p.last = now
	if silent := now.Sub(p.heard); silent > limit {
		return fmt.Errorf("nothing from the client for %v during a call", silent.Round(time.Millisecond))
	}
	cs.noteWrite()
	_, err := cs.st.Write(probeLine)
	return err
}

// Close ends the client's session transport: the whole QUIC connection, as
// closing a legacy command connection ends that client. While the server
// drains, the code says so (the client may reconnect elsewhere).
func (cs *commandStream) Close() error {
	cs.st.SetWriteDeadline(time.Unix(1, 0)) // ends a blocked Write; see mediaStream.Close
	lingering := cs.wroteDraining.Load()
	if cs.c.srv.isClosed() && !lingering {
		// Draining with nothing left to say: the close code alone tells
		// the client why. A FIN first may reach it before the code, and
		// its reader would report a plain EOF.
		return cs.c.srv.closeConn(cs.c.qc, false)
	}
	cs.st.CancelRead(quicgo.StreamErrorCode(codeClosed))
	cs.st.Close() // FIN after the last message
	// Draining, with messages written since it began (a call's last
	// notice): the close code waits until the client has read up to the
	// FIN and closed, or closeLinger.
	return cs.c.srv.closeConn(cs.c.qc, lingering)
}

func (cs *commandStream) noteWrite() {
	if cs.c.srv.draining.Load() {
		cs.wroteDraining.Store(true)
	}
}

// mediaStream is a media channel: a stream whose first line registers it,
// then opaque bytes (stream mode) or datagrams (datagram mode).
type mediaStream struct {
	lineStream
	dgrams  chan []byte   // datagram mode: payloads received, filled by deliver
	dgramOn bool          // owned by the core's reader after EnableDatagrams
	rdl     *deadline     // datagram mode read deadline
	gone    chan struct{} // closed when the stream's read side ends in datagram mode

	// Datagram mode writes: WriteMedia hands payloads to sendLoop, waiting
	// for room until the write deadline (quic-go's SendDatagram blocks
	// while its queue is full and knows no deadline).
	wdl      *deadline     // datagram mode write deadline
	outbox   chan []byte   // payloads for sendLoop, each WriteMedia's own copy
	sendDone chan struct{} // closed when sendLoop ends; sendErr is set then
	sendErr  error
	maxDgram int // owned by sendLoop: current max payload size

	// Datagram mode, pushed (PushMedia): receiveDatagrams hands each
	// datagram to push itself, a goroutine hand-off less per datagram
	// than through dgrams and ReadMedia.
	pmu      sync.Mutex
	push     func([]byte) // under pmu; nil when not pushed
	timed    bool         // under pmu: the push has an idle time, lastPush counts
	lastPush atomic.Int64 // when push last got a datagram (UnixNano), for PushMedia's idle

	closeOnce sync.Once
	closed    chan struct{} // closed by Close
}

var (
	_ transport.MediaConn = (*mediaStream)(nil)
	_ transport.KeptAlive = (*mediaStream)(nil)
	_ transport.Pusher    = (*mediaStream)(nil)
	_ transport.TryWriter = (*mediaStream)(nil)
)

// dgramQueue is the number of received datagrams held for the relay's
// reader; more are dropped (a lost datagram never delays the next).
const dgramQueue = 64

// outboxLen is how many datagram payloads wait for sendLoop: enough to
// ride out a short stall of quic-go's queue, few enough that a stalled
// receiver makes the writer wait at once, for its deadline.
const outboxLen = 8

func newMediaStream(c *client, st *quicgo.Stream) *mediaStream {
	m := &mediaStream{maxDgram: 1200, rdl: newDeadline(), wdl: newDeadline(), closed: make(chan struct{})}
	m.init(c, st, spareMedia, mediaBuffer, true)
	return m
}

// ReadMedia returns media: in stream mode the next bytes of the stream
// (including any that followed the registration line), in datagram mode
// the next datagram payload. The stream mode has no keepalive: its bytes
// are all media.
func (m *mediaStream) ReadMedia() ([]byte, error) {
	if !m.dgramOn {
		return m.readStream()
	}
	return m.readDatagram()
}

// readStream returns whatever the stream has buffered, without a copy:
// bufio keeps those bytes until the next read fills its buffer again.
func (m *mediaStream) readStream() ([]byte, error) {
	br, err := m.rd.filled()
	if err != nil {
		return nil, err
	}
	b, _ := br.Peek(br.Buffered())
	br.Discard(len(b))
	return b, nil
}

// errAnchorClosed ends datagram media whose anchor stream the client
// closed.
var errAnchorClosed = errors.New("datagram media: anchor stream closed")

// readDatagram returns the next datagram payload.
func (m *mediaStream) readDatagram() ([]byte, error) {
	select {
	case d := <-m.dgrams:
		return d, nil
	case <-m.gone:
		return nil, errAnchorClosed
	case <-m.closed:
		return nil, net.ErrClosed
	case <-m.rdl.expired():
		return nil, errTimeout
	}
}

// WriteMedia writes p to the stream, or as datagrams of at most the
// negotiated size, in order. Either way it returns by the write deadline:
// in datagram mode it hands p to sendLoop, and fails with a timeout when
// sendLoop has had no room for it by then (the receiver takes nothing).
func (m *mediaStream) WriteMedia(p []byte) error {
	if !m.dgramOn {
		_, err := m.st.Write(p)
		return err
	}
	if err := m.datagramWriteFailed(); err != nil {
		return err
	}
	p = append([]byte(nil), p...) // the caller reuses p
	select {
	case m.outbox <- p:
		return nil
	case <-m.closed:
		return net.ErrClosed
	case <-m.sendDone:
		return m.sendErr
	case <-m.wdl.expired():
		return errTimeout
	}
}

// datagramWriteFailed says why a datagram write fails at once, if it
// does: the stream is closed, sendLoop failed, or the write deadline is
// past (which fails a write at once, as on sockets).
func (m *mediaStream) datagramWriteFailed() error {
	select {
	case <-m.closed:
		return net.ErrClosed
	case <-m.sendDone:
		return m.sendErr
	case <-m.wdl.expired():
		return errTimeout
	default:
		return nil
	}
}

// TryWriteMedia queues p for sendLoop if there is room now, in datagram
// mode; in stream mode it takes nothing (a stream write may wait for the
// client's flow control), and the relay writes p the usual way. It saves
// the relay's write loop a wake-up per datagram.
func (m *mediaStream) TryWriteMedia(p []byte) (transport.TryResult, error) {
	if !m.dgramOn || len(p) > transport.MaxTryWrite {
		return transport.NotTaken, nil
	}
	if err := m.datagramWriteFailed(); err != nil {
		return transport.Written, err
	}
	select {
	case m.outbox <- append([]byte(nil), p...): // the caller reuses p
		return transport.Written, nil
	default:
		return transport.NotTaken, nil
	}
}

// sendLoop sends the payloads WriteMedia queues until the stream closes or
// a send fails. It may stay blocked in SendDatagram after the stream
// closed, until quic-go's queue moves or the connection ends; the client's
// wait group owns it.
func (m *mediaStream) sendLoop() {
	defer close(m.sendDone)
	for {
		select {
		case p := <-m.outbox:
			if err := m.sendDatagrams(p); err != nil {
				m.sendErr = err
				return
			}
		case <-m.closed:
			m.sendErr = net.ErrClosed
			return
		}
	}
}

// sendDatagrams sends p as datagrams of at most the current maximum size,
// learning a smaller maximum from quic-go.
func (m *mediaStream) sendDatagrams(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), m.maxDgram)
		err := m.c.qc.SendDatagram(p[:n])
		var tooLarge *quicgo.DatagramTooLargeError
		if errors.As(err, &tooLarge) && tooLarge.MaxDatagramPayloadSize > 0 {
			m.maxDgram = int(tooLarge.MaxDatagramPayloadSize)
			continue
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// EnableDatagrams switches to datagram mode, if the client negotiated
// DATAGRAM support. The stream's read side is then watched: the client
// closing it unregisters the media. Nothing more travels on it, so the
// registration's read deadline comes off it: from now on read deadlines
// apply to datagrams.
func (m *mediaStream) EnableDatagrams() error {
	if !m.c.qc.ConnectionState().SupportsDatagrams.Remote {
		return errors.New("client did not negotiate QUIC datagrams")
	}
	m.rd.setDeadline(time.Time{})
	m.dgrams = make(chan []byte, dgramQueue)
	m.gone = make(chan struct{})
	m.outbox = make(chan []byte, outboxLen)
	m.sendDone = make(chan struct{})
	m.dgramOn = true
	m.c.dgramMedia.Store(m)
	m.c.wg.Go(m.watchAnchor)
	m.c.wg.Go(m.sendLoop)
	return nil
}

// watchAnchor reads the anchor stream until it ends; nothing should arrive.
// It ends when the stream does (Close cancels the read side).
func (m *mediaStream) watchAnchor() {
	for {
		m.rd.idle() // wait without the buffer
		br, err := m.rd.reader()
		if err == nil {
			_, err = br.Discard(max(br.Buffered(), 1)) // what arrived, at least a byte
		}
		if err != nil {
			m.rd.idle()
			close(m.gone)
			return
		}
	}
}

// deliver hands a received datagram on: to push while PushMedia runs,
// else to ReadMedia's queue, where it is dropped when the reader lags.
func (m *mediaStream) deliver(p []byte) {
	m.pmu.Lock()
	if push := m.push; push != nil {
		if m.timed {
			m.lastPush.Store(time.Now().UnixNano())
		}
		push(p)
		m.pmu.Unlock()
		return
	}
	m.pmu.Unlock()
	select {
	case m.dgrams <- p:
	default:
		m.c.srv.datagramsDropped.Add(1)
	}
}

// PushMedia serves a datagram-mode channel until it ends (see
// transport.Pusher): the connection's datagram reader calls deliver for
// each datagram, starting with those queued before. It ends as ReadMedia
// would fail: the anchor stream closed, Close, or a read deadline passed.
// In stream mode it returns transport.ErrNoPush.
func (m *mediaStream) PushMedia(idle time.Duration, deliver func([]byte)) error {
	if !m.dgramOn {
		return transport.ErrNoPush
	}
	m.pmu.Lock()
	for queued := true; queued; {
		select {
		case p := <-m.dgrams:
			deliver(p)
		default:
			queued = false
		}
	}
	m.push, m.timed = deliver, idle > 0
	m.lastPush.Store(time.Now().UnixNano())
	m.pmu.Unlock()
	defer func() {
		m.pmu.Lock()
		m.push = nil // no deliver runs after PushMedia returns
		m.pmu.Unlock()
	}()
	var idleC <-chan time.Time // nil, never ready, without idle
	var idleT *time.Timer
	if idle > 0 {
		idleT = time.NewTimer(idle)
		defer idleT.Stop()
		idleC = idleT.C
	}
	for {
		select {
		case <-m.gone:
			return errAnchorClosed
		case <-m.closed:
			return net.ErrClosed
		case <-m.rdl.expired():
			return errTimeout
		case <-idleC:
			quiet := time.Since(time.Unix(0, m.lastPush.Load()))
			if quiet >= idle {
				return errTimeout
			}
			idleT.Reset(idle - quiet)
		}
	}
}

func (m *mediaStream) SetReadDeadline(t time.Time) error {
	if m.dgramOn {
		m.rdl.set(t)
		return nil
	}
	return m.rd.setDeadline(t)
}

// SetWriteDeadline bounds writes to the stream and WriteMedia's wait for
// room in datagram mode.
func (m *mediaStream) SetWriteDeadline(t time.Time) error {
	m.wdl.set(t)
	return m.st.SetWriteDeadline(t)
}

// Refuse resets the stream with the refusal as application error code.
func (m *mediaStream) Refuse(r transport.Refusal) { refuse(m.st, r) }

// refuse resets both directions of st with the refusal as code.
func refuse(st *quicgo.Stream, r transport.Refusal) {
	st.CancelRead(quicgo.StreamErrorCode(r))
	st.CancelWrite(quicgo.StreamErrorCode(r))
}

// Close ends the media stream (replaced, or its session ended); the
// connection carries on. The write deadline goes into the past first: a
// Write blocked on a stalled client's flow control ignores st.Close (and,
// once the stream is closed, the connection's end too) but rechecks its
// deadline when woken.
func (m *mediaStream) Close() error {
	m.closeOnce.Do(func() { close(m.closed) })
	m.c.dgramMedia.CompareAndSwap(m, nil)
	m.st.SetWriteDeadline(time.Unix(1, 0))
	m.st.CancelRead(quicgo.StreamErrorCode(codeClosed))
	return m.st.Close()
}

// Front names the QUIC front, for the core's per-front counts.
func (l *lineStream) Front() string { return transport.FrontQUIC }
