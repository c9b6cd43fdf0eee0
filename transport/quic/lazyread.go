package quic

import (
	"bufio"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

// An idle client should not hold read buffers: a logged-in client waits
// for minutes between commands, and between calls nothing arrives on its
// media stream, yet each of its two streams would keep a buffer for as
// long as it is connected. So a stream borrows its buffer from a free
// list when data comes and gives it back when it has returned everything
// in it: a command stream at the next read (commands come one at a time),
// a media stream once no data came for idleRead (a call's frames keep
// it). For the media stream a timer checks once per idleRead, not a
// deadline per read, and cuts a wait short by putting the stream's read
// deadline in the past. Without a buffer a stream waits with quic-go's
// Stream.Peek, which blocks until a byte has arrived but consumes
// nothing, so the first read that follows returns whatever has arrived,
// as before.
//
// Giving back a buffer that holds nothing loses no data: quic-go keeps
// what it has not returned, and its errors are sticky (a timeout comes
// again from the deadline, which is still set).

// idleRead is how long a media stream keeps its buffer without data:
// longer than the gaps between a call's frames, so a call keeps its
// buffers.
const idleRead = time.Second

// spareReaders holds buffered readers that idle streams gave back, for
// streams that wake; what does not fit goes to the collector (not a
// sync.Pool, which keeps what a burst put back until two collections; see
// transport/tcp's spareRecords).
type spareReaders chan *bufio.Reader

var (
	spareCommand = make(spareReaders, 64) // of commandBuffer bytes
	spareMedia   = make(spareReaders, 64) // of mediaBuffer bytes
)

// get returns a spare reader or a new one of size bytes.
func (s spareReaders) get(size int) *bufio.Reader {
	select {
	case br := <-s:
		return br
	default:
		return bufio.NewReaderSize(nil, size)
	}
}

// put gives br back: kept as a spare, or left to the collector.
func (s spareReaders) put(br *bufio.Reader) {
	br.Reset(nil)
	select {
	case s <- br:
	default:
	}
}

// lazyReader is a stream's borrowed read buffer and its read deadline.
type lazyReader struct {
	st     *quicgo.Stream
	srv    *Server // counts the buffers out
	spares spareReaders
	size   int
	// linger keeps the buffer until no data came for idleRead (media);
	// without it the buffer goes back whenever it is empty (commands).
	linger bool

	br    *bufio.Reader // owned by the reader; nil while it waits without one
	one   [1]byte       // owned by the reader: what Peek fills
	reads atomic.Uint64 // reads that returned data while lingering, for check

	mu       sync.Mutex
	deadline time.Time // the core's read deadline
	holding  bool      // linger: the reader holds a buffer
	cut      bool      // linger: check has put the stream's deadline in the past
	// watch runs check idleRead after the buffer was borrowed or last
	// checked: a call's frames cost no timer each.
	watch *time.Timer
	seen  uint64 // reads at the last check
}

// init makes r read st through buffers of size bytes from spares.
func (r *lazyReader) init(srv *Server, st *quicgo.Stream, spares spareReaders, size int, linger bool) {
	r.st, r.srv, r.spares, r.size, r.linger = st, srv, spares, size, linger
}

// reader returns the buffer to read from, borrowing one once data has
// come; it waits for data without one. Errors are the stream's. The
// goroutine that waits here does so for most of a connection's life, so
// what it does besides waiting is in functions of their own (noinline):
// their frames are not on its stack while it waits.
func (r *lazyReader) reader() (*bufio.Reader, error) {
	if r.br != nil && (r.linger || r.br.Buffered() > 0) {
		return r.br, nil
	}
	r.idle()
	if _, err := r.st.Peek(r.one[:]); err != nil {
		return nil, err
	}
	r.borrow()
	return r.br, nil
}

//go:noinline
func (r *lazyReader) borrow() {
	r.br = r.spares.get(r.size)
	r.br.Reset(r.st)
	r.srv.readBuffers.Add(1)
	if !r.linger {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holding, r.seen = true, r.reads.Load()
	if r.watch == nil {
		r.watch = time.AfterFunc(idleRead, r.check)
	} else {
		r.watch.Reset(idleRead)
	}
}

// check ends a lingering reader's wait if no data came since the last
// check, so that it gives its buffer back; else it checks again later.
func (r *lazyReader) check() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.holding || r.cut {
		return
	}
	if n := r.reads.Load(); n != r.seen {
		r.seen = n
		r.watch.Reset(idleRead)
		return
	}
	r.cut = true
	r.applyLocked()
}

// filled returns the buffer with at least one byte in it. Once no data
// came for idleRead, it gives the buffer back and waits on without one.
func (r *lazyReader) filled() (*bufio.Reader, error) {
	for {
		br, err := r.reader()
		if err != nil {
			return nil, err
		}
		if _, err = br.Peek(1); err == nil {
			r.reads.Add(1)
			return br, nil
		}
		if !r.lingered(err) {
			r.idle()
			return nil, err
		}
		r.release() // idle: wait for the next data without the buffer
	}
}

// idle gives the buffer back unless it holds data the next read returns
// (after a failed read, or before a wait).
//
//go:noinline
func (r *lazyReader) idle() {
	if r.br != nil && r.br.Buffered() == 0 {
		r.release()
	}
}

// release gives the buffer back and ends the linger.
func (r *lazyReader) release() {
	if r.br != nil {
		r.spares.put(r.br)
		r.br = nil
		r.srv.readBuffers.Add(-1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.watch != nil {
		r.watch.Stop()
	}
	r.holding = false
	if r.cut {
		r.cut = false
		r.applyLocked()
	}
}

// lingered reports whether err is a timeout that is not the core's: its
// deadline has not passed, so check cut the wait short. (bufio may also
// return a timeout that came with the data of an earlier read; the next
// wait finds that data.)
func (r *lazyReader) lingered(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deadline.IsZero() || time.Now().Before(r.deadline)
}

// setDeadline sets the core's read deadline. Safe from any goroutine; a
// deadline in the past fails a blocked read at once.
func (r *lazyReader) setDeadline(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deadline = t
	return r.applyLocked()
}

// applyLocked puts the core's deadline on the stream, or one in the past
// while check has cut a lingering wait.
func (r *lazyReader) applyLocked() error {
	d := r.deadline
	if r.cut {
		d = time.Unix(1, 0)
	}
	return r.st.SetReadDeadline(d)
}
