// Package transporttest is the conformance suite of package transport: the
// checks every transport.Conn and transport.MediaConn implementation must
// pass, in the manner of golang.org/x/net/nettest.TestConn. An adapter's
// tests build, over real sockets, the server-side channel exactly as the
// adapter hands it to the core, plus the client-side peer that drives it in
// the framing's own terms (TLS records, lines on a QUIC stream, datagrams),
// and call TestConn or TestMediaConn. A new transport gets the suite for
// free.
//
// What is checked is the documented contract of package transport:
//
//   - One WriteMessage is one message at the peer, and one message from the
//     peer is one ReadMessage, even when several arrive together; a line
//     framing adds its terminator unless the message has it, never twice.
//   - A message longer than the framing carries is refused as documented:
//     cut (QUIC lines: one message the parser refuses, the stream survives)
//     or split (TLS records of at most transport.MaxMessage bytes).
//   - Deadlines: one in the past fails reads and writes at once with a
//     timeout error (net.Error.Timeout or os.ErrDeadlineExceeded); one that
//     passes during a read ends it; moving it into the past from another
//     goroutine unblocks a read; clearing it makes reads work again.
//   - Close unblocks a blocked read and a blocked write, from any goroutine,
//     any number of times, concurrently; after it reads and writes fail and
//     the peer sees the channel end.
//   - A read in one goroutine and a write in another at the same time, with
//     deadlines set from a third (run with -race).
//   - Media: keepalives are skipped where the framing can tell them and
//     delivered as media where it cannot; ReadMedia's slice stays valid
//     until the next read; WriteMedia keeps order; Refuse ends the channel
//     and tells the peer why where the transport can; EnableDatagrams fails
//     where there are none.
//   - RemoteAddr is the peer's address; Origin is comparable, stable and,
//     for a media channel, equal to its client's command channel's.
package transporttest

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dtcall/dtcall/transport"
)

// Peer is the client end of a channel under test. It speaks the framing:
// a message is a TLS record on the legacy front, a line on a QUIC stream;
// media is a record, the bytes of a stream, or one datagram. Its methods
// are called from one goroutine at a time for reading and one for writing.
type Peer interface {
	// WriteMessage sends msg as one message: one record, or msg and the
	// line terminator. A message longer than the framing carries goes out
	// the way the framing's client would send it (a TLS library cuts it
	// into records; a line is just long).
	WriteMessage(msg []byte) error
	// ReadMessage returns the next message without its terminator, waiting
	// until deadline.
	ReadMessage(deadline time.Time) ([]byte, error)
	// WriteMedia sends p as media: one record, stream bytes, one datagram.
	WriteMedia(p []byte) error
	// ReadMedia returns the next media the channel wrote: one record, the
	// next bytes of the stream, one datagram. It waits until deadline.
	ReadMedia(deadline time.Time) ([]byte, error)
	// Stall makes the peer stop taking what the channel writes, so that
	// the channel's writes come to block: a TLS or stream peer just stops
	// reading; a datagram peer must stop acknowledging (drop what arrives).
	// The peer's own writes may fail from then on.
	Stall()
	// WaitEnd reads (and discards) until the channel ends as the peer sees
	// it and returns that error; nil if it did not end by deadline.
	WaitEnd(deadline time.Time) error
	// LocalAddr is the peer's address, as the channel's RemoteAddr must be.
	LocalAddr() netip.AddrPort
	// Close closes the peer's end. Any number of times.
	Close() error
}

// RefusalPeer is implemented by peers that can tell from the error that
// ended their channel (WaitEnd's) which refusal the server gave.
type RefusalPeer interface {
	Refusal(err error) (transport.Refusal, bool)
}

// Pipe is a command channel under test and its peer. The server side's
// first messages (a QUIC stream's opening line) have been read already.
type Pipe struct {
	Conn transport.Conn
	Peer Peer
}

// MakePipe builds a Pipe over real sockets. It registers, with t.Cleanup,
// whatever ends the pipe; the suite may have closed Conn and Peer already.
type MakePipe func(t *testing.T) Pipe

// MediaPipe is a media channel under test, registered (its registration
// read with ReadMessage and, in datagram mode, EnableDatagrams called), and
// its peer.
type MediaPipe struct {
	Conn transport.MediaConn
	Peer Peer
	// Origin is the Origin of a command channel of the same client, which
	// Conn.Origin must equal; nil skips that check.
	Origin any
}

// MakeMediaPipe builds a MediaPipe over real sockets. The peer writes
// early as media right behind the registration (nil: nothing), in the same
// flight where the framing allows; a mode that carries no media before its
// registration is bound ignores it and says so in Framing.NoEarlyMedia.
type MakeMediaPipe func(t *testing.T, early []byte) MediaPipe

// Framing describes the framing of the implementation under test, for the
// checks that depend on it.
type Framing struct {
	// Terminator ends every message on the wire ("\n" for lines). The
	// peer's ReadMessage strips it, and WriteMessage must not double it
	// when the message ends with it already. Empty for TLS records.
	Terminator string
	// MaxMessage is the longest message ReadMessage returns whole.
	MaxMessage int
	// CutOversize: a longer message from the peer comes back from
	// ReadMessage as one message of more than MaxMessage bytes, a prefix of
	// what was sent (so the command parser refuses it), the rest skipped,
	// and the next message arrives intact. False: it arrives as several
	// messages of at most MaxMessage bytes, in order (TLS records).
	CutOversize bool

	// Keepalive is a media message ReadMedia skips (legacy: "D"); nil when
	// the framing cannot tell one from media (a stream's bytes, datagrams),
	// and then it must arrive as media.
	Keepalive []byte
	// MediaStream: media is the bytes of a stream, boundaries not kept.
	MediaStream bool
	// MaxMedia is the longest WriteMedia that arrives at the peer as one
	// message (a record, a datagram); longer ones arrive in order as several.
	// Ignored with MediaStream.
	MaxMedia int
	// Lossy: media writes to a stalled peer may be dropped instead of
	// blocking (datagrams). Without it they must block: never buffer
	// without bound.
	Lossy bool
	// NoEarlyMedia: media sent right behind the registration is not
	// carried (datagram mode: datagrams before the mode switch are dropped).
	NoEarlyMedia bool
	// NoDatagrams: the channel has no datagram mode; EnableDatagrams must
	// fail and leave the channel working.
	NoDatagrams bool

	// Known names checks known to fail for this implementation, with the
	// reason: they are skipped and the reason shown. Remove an entry once
	// the adapter is fixed.
	Known map[string]string
}

// Timing bounds. The machines that run the suite are small and loaded and
// run it under -race, so "at once" is generous; a call still running after
// blockedAfter is taken to be blocked.
const (
	soon         = 3 * time.Second
	blockedAfter = 150 * time.Millisecond
)

// TestConn runs the conformance checks of transport.Conn against the
// command channels mk builds.
func TestConn(t *testing.T, mk MakePipe, f Framing) {
	m := func(t *testing.T) *pipe { return commandPipe(mk(t), f) }
	s := suite{f: f}
	s.run(t, "Messages", func(t *testing.T) { s.messages(t, m(t)) })
	s.run(t, "Oversize", func(t *testing.T) { s.oversize(t, m(t)) })
	s.runCommon(t, m)
}

// TestMediaConn runs the conformance checks of transport.MediaConn against
// the media channels mk builds: the common ones on ReadMedia/WriteMedia,
// and those of media only.
func TestMediaConn(t *testing.T, mk MakeMediaPipe, f Framing) {
	m := func(t *testing.T) *pipe { return mediaPipe(t, mk(t, nil), f) }
	s := suite{f: f}
	s.run(t, "EarlyMedia", func(t *testing.T) { s.earlyMedia(t, mk) })
	s.run(t, "MediaIn", func(t *testing.T) { s.mediaIn(t, m(t)) })
	s.run(t, "MediaOut", func(t *testing.T) { s.mediaOut(t, m(t)) })
	s.run(t, "Keepalive", func(t *testing.T) { s.keepalive(t, m(t)) })
	s.run(t, "Refuse", func(t *testing.T) { s.refuse(t, m(t)) })
	s.run(t, "Datagrams", func(t *testing.T) { s.datagrams(t, m(t)) })
	s.runCommon(t, m)
}

// suite holds what every check needs.
type suite struct{ f Framing }

// run runs one check as a subtest, or skips it when it is Known to fail.
func (s suite) run(t *testing.T, name string, check func(*testing.T)) {
	t.Run(name, func(t *testing.T) {
		if why, ok := s.f.Known[name]; ok {
			t.Skipf("known contract violation: %s", why)
		}
		check(t)
	})
}

// runCommon runs the checks shared by command and media channels.
func (s suite) runCommon(t *testing.T, m func(*testing.T) *pipe) {
	s.run(t, "PastReadDeadline", func(t *testing.T) { s.pastReadDeadline(t, m(t)) })
	s.run(t, "PastWriteDeadline", func(t *testing.T) { s.pastWriteDeadline(t, m(t)) })
	s.run(t, "ReadDeadlineExpires", func(t *testing.T) { s.readDeadlineExpires(t, m(t)) })
	s.run(t, "DeadlineUnblocksRead", func(t *testing.T) { s.deadlineUnblocksRead(t, m(t)) })
	s.run(t, "CloseUnblocksRead", func(t *testing.T) { s.closeUnblocksRead(t, m(t)) })
	s.run(t, "CloseUnblocksWrite", func(t *testing.T) { s.closeUnblocksWrite(t, m(t)) })
	s.run(t, "CloseConcurrent", func(t *testing.T) { s.closeConcurrent(t, m(t)) })
	s.run(t, "AfterClose", func(t *testing.T) { s.afterClose(t, m(t)) })
	s.run(t, "ConcurrentReadWrite", func(t *testing.T) { s.concurrentReadWrite(t, m(t)) })
	s.run(t, "BufferValid", func(t *testing.T) { s.bufferValid(t, m(t)) })
	s.run(t, "Addr", func(t *testing.T) { s.addr(t, m(t)) })
}
