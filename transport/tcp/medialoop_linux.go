package tcp

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The media loops. A goroutine per media connection costs, for every
// frame, a wake-up of that goroutine by the runtime's poller, a read that
// finds the socket empty before it parks again, and the scheduler's work in
// between: about as much CPU as the frame's own read and write. A loop
// instead waits for all of its connections at once (epoll, level-triggered),
// and for each one that has data reads and decrypts the records there,
// handing each to the core, which writes it to the partner without
// waiting. One wake-up serves every connection ready at that moment, and an
// empty socket is known from a short read, not asked again.
//
// A connection joins a loop once its media registration is read
// (recordConn.PushMedia): its socket then leaves the runtime's poller (it
// is duplicated and the runtime's descriptor closed), so that the runtime
// does not wake for its data too. From then on its reads are the loop's and
// its writes never wait (detached.go); a writer that must wait for room
// waits for the loop to see the socket writable.

// loopSet is a front's media loops, started when the first connection
// joins (loopCount).
type loopSet struct {
	mu     sync.Mutex
	loops  []*mediaLoop
	next   int
	closed bool
}

// pick returns the loop for a new connection, round robin.
func (ls *loopSet) pick() (*mediaLoop, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return nil, net.ErrClosed
	}
	if ls.loops == nil {
		for range loopCount() {
			l, err := newMediaLoop()
			if err != nil {
				for _, l := range ls.loops {
					l.stop()
				}
				ls.loops = nil
				return nil, err
			}
			ls.loops = append(ls.loops, l)
		}
	}
	l := ls.loops[ls.next%len(ls.loops)]
	ls.next++
	return l, nil
}

// close stops the loops; connections still in them end with net.ErrClosed.
func (ls *loopSet) close() {
	ls.mu.Lock()
	ls.closed = true
	loops := ls.loops
	ls.loops = nil
	ls.mu.Unlock()
	for _, l := range loops {
		l.stop()
	}
}

// recordsPerRound bounds the records one connection gets read in a row, so
// that a client sending a burst does not hold up the loop's others; the
// rest is read in the next round.
const recordsPerRound = 16

// mediaLoop is one event loop and the connections in it.
type mediaLoop struct {
	epfd   int
	epfile *os.File        // epfd, in the runtime's poller: the loop waits there
	epconn syscall.RawConn // epfile's
	wake   int             // eventfd: control work waits

	mu       sync.Mutex
	conns    map[int]*pushed // by descriptor
	control  []control       // what other goroutines asked for
	stopping bool
	stopped  bool // its descriptors are closed: ask nothing of them

	done chan struct{} // closed when run returns

	// The loop's own.
	events [128]unix.EpollEvent
	batch  []ready
	again  []*pushed // cut off by recordsPerRound: read on without waiting
	buf    []byte    // one record's plaintext, for every connection
	epoch  time.Time // the loop's clock: pushed.last counts from it
}

type ready struct {
	p      *pushed
	events uint32
}

// control is a connection to start reading (it may hold records already)
// or to end.
type control struct {
	p   *pushed
	end error // nil: start
}

func newMediaLoop() (*mediaLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile puts it in the runtime's poller: the
	// loop parks there like any goroutine waiting for a socket, rather than
	// blocking a thread in epoll_wait, which has the runtime's monitor
	// retake its P and wake every 20 µs.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	epfile := os.NewFile(uintptr(epfd), "epoll")
	epconn, err := epfile.SyscallConn()
	if err != nil {
		epfile.Close()
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		epfile.Close()
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		epfile.Close()
		unix.Close(wake)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	l := &mediaLoop{
		epfd:   epfd,
		epfile: epfile,
		epconn: epconn,
		wake:   wake,
		conns:  make(map[int]*pushed),
		done:   make(chan struct{}),
		buf:    make([]byte, maxRecordPlaintext),
		epoch:  time.Now(),
	}
	go l.run()
	return l, nil
}

// maxRecordPlaintext is the largest plaintext of one TLS record: a read
// into a buffer this big takes a whole record.
const maxRecordPlaintext = 16384

// now is the loop's clock, for idleness.
func (l *mediaLoop) now() int64 { return int64(time.Since(l.epoch)) }

// connEvents is what the loop waits for on a connection. Edge-triggered:
// every arrival of data is an event, and a read that found the socket
// emptied (drained) needs no second look; level-triggered items would also
// wake the runtime's poller again after every wait.
const connEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET

// add puts p in the loop and has it read at once: crypto/tls may hold
// records read along with the registration, which no readiness of the
// socket would announce.
func (l *mediaLoop) add(p *pushed) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping {
		return net.ErrClosed
	}
	ev := unix.EpollEvent{Events: connEvents, Fd: int32(p.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, p.fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	l.conns[p.fd] = p
	l.askLocked(control{p: p})
	return nil
}

// end asks the loop to end p with err (first reason wins). It never
// blocks; p.done closes once the loop has let go of p.
func (l *mediaLoop) end(p *pushed, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.askLocked(control{p: p, end: err})
}

func (l *mediaLoop) askLocked(c control) {
	if l.stopped {
		return // run has let go of every connection
	}
	l.control = append(l.control, c)
	if len(l.control) == 1 {
		var one = [8]byte{1}
		unix.Write(l.wake, one[:]) // a full counter wakes the loop as well
	}
}

// watchWrite has the loop tell p when its socket has room (or not), for
// the bytes it holds.
func (l *mediaLoop) watchWrite(p *pushed, on bool) {
	ev := unix.EpollEvent{Events: connEvents, Fd: int32(p.fd)}
	if on {
		ev.Events |= unix.EPOLLOUT
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, p.fd, &ev) // fails only once p is out of the loop
	}
}

// stop ends every connection with net.ErrClosed and the loop with them,
// and waits for it.
func (l *mediaLoop) stop() {
	l.mu.Lock()
	l.stopping = true
	l.askLocked(control{})
	l.mu.Unlock()
	<-l.done
	l.mu.Lock()
	l.stopped = true
	l.epfile.Close()
	unix.Close(l.wake)
	l.mu.Unlock()
}

func (l *mediaLoop) run() {
	defer close(l.done)
	for {
		n, err := l.wait()
		if err != nil {
			l.endAll(err)
			return
		}
		l.mu.Lock()
		l.batch = l.batch[:0]
		for _, ev := range l.events[:n] {
			if int(ev.Fd) == l.wake {
				var b [8]byte
				unix.Read(l.wake, b[:])
				continue
			}
			if p := l.conns[int(ev.Fd)]; p != nil {
				l.batch = append(l.batch, ready{p, ev.Events})
			}
		}
		ctl := l.control
		l.control = nil
		stopping := l.stopping
		l.mu.Unlock()

		// Connections cut off in the last round read on after the ones
		// that became ready, not in the round that cut them off.
		again := l.again
		l.again = nil
		now := l.now()
		for _, r := range l.batch {
			if r.events&unix.EPOLLOUT != 0 {
				r.p.sock.sendHeld()
			}
			if r.events&^unix.EPOLLOUT != 0 {
				l.read(r.p, now)
			}
		}
		for _, p := range again {
			l.read(p, now)
		}
		for _, c := range ctl {
			switch {
			case c.p == nil:
			case c.end != nil:
				l.remove(c.p, c.end)
			default:
				l.read(c.p, now)
			}
		}
		if stopping {
			l.endAll(net.ErrClosed)
			return
		}
	}
}

// wait returns the next events. It never blocks in epoll_wait: with
// nothing ready it parks until the runtime's poller sees epfd readable,
// unless connections cut off by recordsPerRound wait to be read on.
func (l *mediaLoop) wait() (int, error) {
	var n int
	var werr error
	poll := func(fd uintptr) bool {
		n, werr = unix.EpollWait(int(fd), l.events[:], 0)
		return n > 0 || (werr != nil && werr != unix.EINTR) || len(l.again) > 0
	}
	if err := l.epconn.Read(poll); err != nil {
		return 0, err
	}
	if werr != nil && werr != unix.EINTR {
		return 0, os.NewSyscallError("epoll_wait", werr)
	}
	return max(n, 0), nil
}

// read reads what p's socket has, record by record, and hands each
// payload on; at most recordsPerRound, then p goes on the list to read on.
func (l *mediaLoop) read(p *pushed, now int64) {
	if p.gone {
		return
	}
	p.sock.det.Load().drained = false
	for range recordsPerRound {
		n, err := p.sc.Read(l.buf)
		if n > 0 {
			p.last.Store(now)
			p.deliver(l.buf[:n])
		}
		switch {
		case err == nil:
		case errors.Is(err, errWouldBlock):
			return
		default:
			l.remove(p, err)
			return
		}
	}
	l.again = append(l.again, p)
}

// remove takes p out of the loop for good, with err as the reason.
func (l *mediaLoop) remove(p *pushed, err error) {
	if p.gone {
		return
	}
	p.gone = true
	l.mu.Lock()
	delete(l.conns, p.fd)
	l.mu.Unlock()
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, p.fd, nil)
	p.err = err
	close(p.done)
}

func (l *mediaLoop) endAll(err error) {
	l.mu.Lock()
	all := make([]*pushed, 0, len(l.conns))
	for _, p := range l.conns {
		all = append(all, p)
	}
	l.mu.Unlock()
	for _, p := range all {
		l.remove(p, err)
	}
}

// pushed is one connection in a loop.
type pushed struct {
	fd      int
	sc      secureConn // reads through sock
	sock    *trySocket
	deliver func([]byte)
	last    atomic.Int64 // when the last record came, on the loop's clock

	// Set by the loop when it lets go of the connection: gone, then err,
	// then done closes.
	gone bool
	err  error
	done chan struct{}
}

// loopCount is how many loops a front runs: one per two cores. A loop
// that has more to do takes more per wake-up, so fewer loops wake less;
// and the kernel's half of every frame (the TCP send and receive paths)
// runs on the cores the loops leave free. On two cores one loop costs
// less CPU per frame than two (BENCHMARKS.md, "media loops").
func loopCount() int { return max(1, runtime.GOMAXPROCS(0)/2) }
