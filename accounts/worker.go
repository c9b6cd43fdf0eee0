package accounts

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Worker checks costly hashes in a child process whose checks run in the
// SCHED_IDLE class (ServeWorker): the kernel gives them only CPU time that
// no normal thread wants, so while calls are in progress a burst of the
// old tool's p=16 logins takes what media and signalling leave over
// instead of a whole core (BENCHMARKS.md, "Media during a login burst").
// Store.SetWorker decides which checks go to it. A separate process keeps
// the low priority, and the 16 MiB each check allocates, away from the
// server's threads and heap.
//
// A child serves checks one at a time; up to WorkerConfig.Children run,
// each started when a check finds no other idle, and kept for the next. A
// child exits when its stdin ends, so also when the server dies. A child
// that fails a check (it died, a write or read failed, or no reply came
// within Timeout, as when normal-priority work starves it) is killed and
// the check reported as an error, and the Store runs it itself at normal
// priority. After a failure other than starvation no new child starts
// for Retry. Passwords reach a child only through its stdin, never its
// arguments or environment. All methods are safe for concurrent use.
type Worker struct {
	cfg   WorkerConfig
	log   *slog.Logger
	slots chan struct{} // a token per check in progress; cap Children

	mu       sync.Mutex
	idle     []*workerProc // children between checks
	failedAt time.Time     // last failure other than starvation, for Retry

	closing   chan struct{} // closed by Close; ends a check in progress
	closeOnce sync.Once
}

// WorkerConfig configures a Worker. Zero fields mean the defaults.
type WorkerConfig struct {
	// Command returns the child to run: a process that serves requests on
	// its stdin and stdout with ServeWorker (dtoperator re-executes
	// itself). Required.
	Command func() *exec.Cmd
	// Timeout bounds one check in the child. A check not done by then was
	// starved by normal-priority work: it is killed and run in the server
	// at normal priority, so a saturated CPU delays a costly login by
	// Timeout at most. Default 3 s, about four p=16 checks.
	Timeout time.Duration
	// Retry is how long after a failure checks run in the server instead
	// of starting a new child. Default 10 s.
	Retry time.Duration
	// Children is how many checks run at once, each in its own child.
	// Default 1; dtoperator runs GOMAXPROCS, at most 4.
	Children int
}

func (c *WorkerConfig) setDefaults() {
	if c.Timeout <= 0 {
		c.Timeout = 3 * time.Second
	}
	if c.Retry <= 0 {
		c.Retry = 10 * time.Second
	}
	if c.Children <= 0 {
		c.Children = 1
	}
}

// errWorkerClosed is what checks get after Close.
var errWorkerClosed = errors.New("password check worker: closed")

// errStarved is a check that took the child longer than Timeout.
var errStarved = errors.New("password check worker: no reply in time (starved of CPU)")

// NewWorker returns a Worker that starts cfg.Command's child when it is
// first needed. log hears of failures.
func NewWorker(cfg WorkerConfig, log *slog.Logger) *Worker {
	cfg.setDefaults()
	return &Worker{cfg: cfg, log: log, slots: make(chan struct{}, cfg.Children), closing: make(chan struct{})}
}

// Children is how many checks w runs at once (WorkerConfig.Children).
func (w *Worker) Children() int { return w.cfg.Children }

// Close ends the checks in progress, kills every child and waits for them
// to exit. Checks after Close fail at once (Store then runs them itself).
// Close is idempotent.
func (w *Worker) Close() error {
	w.closeOnce.Do(func() {
		close(w.closing) // ends the checks in progress, which kill their children
		for range cap(w.slots) {
			w.slots <- struct{}{} // each check in progress has ended; none starts
		}
		w.mu.Lock()
		idle := w.idle
		w.idle = nil
		w.mu.Unlock()
		for _, p := range idle {
			p.kill()
		}
	})
	return nil
}

// verify checks password against h in a child and reports whether it
// matches. It blocks for the check, Timeout at most, after waiting for
// one of the Children if all are busy. An error means the password was
// not checked.
func (w *Worker) verify(h Hash, password string) (bool, error) {
	select {
	case w.slots <- struct{}{}:
	case <-w.closing:
		return false, errWorkerClosed
	}
	defer func() { <-w.slots }()
	p, err := w.take()
	if err != nil {
		return false, err
	}
	ok, err := p.check(h, password, w.cfg.Timeout, w.closing)
	if err != nil {
		p.kill()
		w.mu.Lock()
		w.failLocked(err)
		w.mu.Unlock()
		return false, err
	}
	w.mu.Lock()
	w.idle = append(w.idle, p)
	w.mu.Unlock()
	return ok, nil
}

// take returns an idle child, or starts one. The caller holds a slot, so
// at most Children exist.
func (w *Worker) take() (*workerProc, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if isClosed(w.closing) {
		return nil, errWorkerClosed
	}
	if n := len(w.idle); n > 0 {
		p := w.idle[n-1]
		w.idle = w.idle[:n-1]
		return p, nil
	}
	if since := time.Since(w.failedAt); !w.failedAt.IsZero() && since < w.cfg.Retry {
		return nil, fmt.Errorf("password check worker: failed %v ago, not restarted yet", since.Round(time.Millisecond))
	}
	p, err := startWorker(w.cfg.Command())
	if err != nil {
		w.failLocked(err)
		return nil, err
	}
	return p, nil
}

// failLocked records and logs a failure. mu must be held.
func (w *Worker) failLocked(err error) {
	if errors.Is(err, errStarved) || errors.Is(err, errWorkerClosed) {
		w.log.Debug("password check starved in the worker; checked in the server",
			"tag", "login", "dir", "system", "err", err)
		return
	}
	w.failedAt = time.Now()
	w.log.Warn("password check worker failed; checks run in the server for now",
		"tag", "login", "dir", "system", "err", err, "retry_after", w.cfg.Retry)
}

// workerProc is a running child: in Worker.idle, or owned by the one
// check that took it.
type workerProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser // its stdin
	out *os.File       // its stdout
}

// startWorker starts cmd with pipes on its stdin and stdout.
func startWorker(cmd *exec.Cmd) (*workerProc, error) {
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("password check worker: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("password check worker: %w", err)
	}
	f, ok := out.(*os.File)
	if !ok { // os/exec makes it with os.Pipe
		return nil, errors.New("password check worker: stdout pipe is not a file")
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("password check worker: start: %w", err)
	}
	return &workerProc{cmd: cmd, in: in, out: f}, nil
}

// kill ends the child and waits for it.
func (p *workerProc) kill() {
	p.cmd.Process.Kill()
	p.in.Close()
	p.cmd.Wait() // closes out
}

// check sends one request and waits for the reply, timeout at most or
// until closing is closed.
func (p *workerProc) check(h Hash, password string, timeout time.Duration, closing <-chan struct{}) (bool, error) {
	req := encodeRequest(h, password)
	defer clear(req)
	if err := p.out.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return false, fmt.Errorf("password check worker: %w", err)
	}
	if _, err := p.in.Write(req); err != nil {
		return false, fmt.Errorf("password check worker: send: %w", err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { // owned by check, which waits for it
		defer close(done)
		select {
		case <-closing:
			p.out.SetReadDeadline(time.Now()) // unblocks the read below
		case <-stop:
		}
	}()
	var reply [1]byte
	_, err := io.ReadFull(p.out, reply[:])
	close(stop)
	<-done
	switch {
	case err != nil && isClosed(closing):
		return false, errWorkerClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		return false, fmt.Errorf("%w: %v", errStarved, timeout)
	case err != nil:
		return false, fmt.Errorf("password check worker: reply: %w", err)
	case reply[0] > 1:
		return false, fmt.Errorf("password check worker: reply %d, want 0 or 1", reply[0])
	}
	return reply[0] == 1, nil
}

// isClosed reports whether c is closed.
func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Request layout, as a Worker writes it to the child's stdin, one request
// after another:
//
//	u32   length of the rest, big-endian, at most maxRequest
//	u8    log2 N
//	u8    r
//	u8    p
//	u8    salt length S, then S bytes of salt
//	u8    key length K, then K bytes of key
//	...   the password, to the end
//
// The reply, on the child's stdout: one byte, 1 if the password matches
// the hash and 0 if it does not.
const maxRequest = 1 << 16

// encodeRequest returns the request to check password against h. The
// caller clears it after use: it holds the password.
func encodeRequest(h Hash, password string) []byte {
	n := 3 + 1 + len(h.Salt) + 1 + len(h.Key) + len(password)
	b := make([]byte, 4, 4+n)
	binary.BigEndian.PutUint32(b, uint32(n))
	b = append(b, byte(h.LogN), byte(h.R), byte(h.P), byte(len(h.Salt)))
	b = append(b, h.Salt...)
	b = append(b, byte(len(h.Key)))
	b = append(b, h.Key...)
	return append(b, password...)
}

// decodeRequest parses a request body (after its length).
func decodeRequest(b []byte) (Hash, []byte, error) {
	if len(b) < 4 {
		return Hash{}, nil, errors.New("request too short")
	}
	h := Hash{Params: Params{LogN: int(b[0]), R: int(b[1]), P: int(b[2])}}
	b = b[3:]
	var ok bool
	if h.Salt, b, ok = cut(b); !ok {
		return Hash{}, nil, errors.New("request: salt cut short")
	}
	if h.Key, b, ok = cut(b); !ok {
		return Hash{}, nil, errors.New("request: key cut short")
	}
	return h, b, nil
}

// cut splits a length-prefixed field off b.
func cut(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return nil, nil, false
	}
	n := int(b[0])
	return b[1 : 1+n], b[1+n:], true
}

// ServeWorker is the child's side of a Worker: it reads requests from in,
// checks each (Hash.Verify) and writes the reply to out, one at a time,
// until in ends (nil) or a request is malformed or a write fails (an
// error). It never writes a password anywhere. The checks run in the
// SCHED_IDLE class where the system has one (nice 19 where that is
// refused): ServeWorker locks the calling goroutine to its thread, lowers
// that thread's priority and leaves it so, so call it from the child's
// main goroutine and exit after.
func ServeWorker(in io.Reader, out io.Writer) error {
	lowerThreadPriority()
	return serveWorker(in, out)
}

// serveWorker is ServeWorker at the caller's priority.
func serveWorker(in io.Reader, out io.Writer) error {
	var size [4]byte
	for {
		if _, err := io.ReadFull(in, size[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read request: %w", err)
		}
		n := binary.BigEndian.Uint32(size[:])
		if n > maxRequest {
			return fmt.Errorf("request of %d bytes, limit %d", n, maxRequest)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(in, body); err != nil {
			return fmt.Errorf("read request: %w", err)
		}
		h, password, err := decodeRequest(body)
		if err != nil {
			return err
		}
		reply := []byte{0}
		if h.Verify(string(password)) {
			reply[0] = 1
		}
		clear(body)
		if _, err := out.Write(reply); err != nil {
			return fmt.Errorf("write reply: %w", err)
		}
	}
}
