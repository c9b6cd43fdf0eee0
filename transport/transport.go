// Package transport defines the small interfaces through which the fronts
// (transport/tcp for the legacy TLS pair, transport/quic later) hand client
// connections to the core. The core never sees a socket: it sees messages.
package transport

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Conn is one framed client channel: a legacy TLS connection (a message is
// one TLS record) or a QUIC stream (a message is one line). Implementations
// allow one goroutine in ReadMessage/ReadMedia and another in
// WriteMessage/WriteMedia at the same time; Close may be called from any
// goroutine, any number of times, and unblocks both. SetReadDeadline and
// SetWriteDeadline may be called from any goroutine at any time, never
// block, and a deadline in the past fails a blocked read or write at once:
// the core marks a connection closed that way, under its lock, and leaves
// Close (which may wait) to the goroutine that serves the connection.
type Conn interface {
	// ReadMessage blocks until the next message arrives and returns it
	// without framing. The slice is valid until the next read.
	ReadMessage() ([]byte, error)
	// WriteMessage sends msg as exactly one message: one Write and so one
	// TLS record on the legacy front; one line on QUIC, where the adapter
	// appends "\n" unless msg already ends with one.
	WriteMessage(msg []byte) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	// RemoteAddr is the client's address, for logs.
	RemoteAddr() netip.AddrPort
	// Origin identifies where the connection comes from, for the rule that a
	// media channel must come from the same place as its session's command
	// channel: the client IP on the legacy front, the QUIC connection on QUIC.
	// Values are comparable; different kinds never compare equal.
	Origin() any
	Close() error
}

// MediaConn is a media channel. Its first message is the registration; after
// that it carries opaque media.
type MediaConn interface {
	Conn
	// ReadMedia returns the next media payload, skipping keepalives where
	// the framing can tell them (a TLS record that is exactly "D"): a whole
	// record on the legacy front; on QUIC the next bytes of the stream, or
	// one datagram. The slice is the channel's own buffer (an idle
	// connection holds no second one) and is valid until the next read.
	ReadMedia() ([]byte, error)
	// WriteMedia writes p in one piece, in order after earlier writes.
	WriteMedia(p []byte) error
	// EnableDatagrams switches the channel to datagram mode after a
	// "ts|sid|datagram" registration: from then on ReadMedia returns one
	// datagram payload per call and WriteMedia sends p as datagrams no larger
	// than the negotiated maximum. A channel that cannot carry datagrams (the
	// legacy front) returns an error and the registration is refused.
	EnableDatagrams() error
	// Refuse ends the channel after a refused registration, telling the
	// client why where the transport can (QUIC resets the stream with the
	// refusal as application error code). The legacy front just closes: its
	// clients expect no reply.
	Refuse(r Refusal)
}

// TryWriter is implemented by media channels that can take a small write
// without waiting. The relay then writes a frame from the sender's
// goroutine instead of handing it to the receiver's writer goroutine: one
// goroutine wake-up less per frame. When the channel cannot take the write
// at once, the frame goes the usual way, so a slow receiver still never
// slows its sender.
type TryWriter interface {
	// TryWriteMedia writes p (at most MaxTryWrite bytes) in one piece, like
	// WriteMedia, if the channel can take it now, and says what became of
	// it. An error means the write was tried and failed. Callers never run
	// it at the same time as another write on the same channel.
	TryWriteMedia(p []byte) (TryResult, error)
}

// TryResult is what became of a TryWriteMedia.
type TryResult uint8

const (
	// NotTaken: nothing was written; send p the usual way.
	NotTaken TryResult = iota
	// Written: p went out.
	Written
	// Held: p was taken, but part of it is still in the channel, which had
	// no room for it. The next WriteMedia (one with nothing new is enough)
	// sends it first; until then, nothing more may be tried.
	Held
)

// MaxTryWrite is the largest write TryWriteMedia takes: a few voice frames.
const MaxTryWrite = 512

// Pusher is implemented by media channels that their transport can read
// itself rather than through a goroutine of the caller's per channel: the
// legacy front from an event loop (one wake of the loop serves every
// channel that has data), the QUIC front from the reader it runs for a
// connection's datagrams anyway. Either way no goroutine of the caller
// wakes per frame.
type Pusher interface {
	// PushMedia serves the channel until it ends: it calls deliver with
	// each payload ReadMedia would have returned, in order, from the
	// transport's loop, and returns the error ReadMedia would have returned
	// (a deadline in the past ends it at once, as it fails a read). deliver
	// must not block and must not keep p. When nothing at all arrives for
	// idle (if > 0) it ends with a timeout error. It returns ErrNoPush at
	// once, having read nothing, when this channel cannot be served that
	// way; the caller then reads it with ReadMedia.
	PushMedia(idle time.Duration, deliver func(p []byte)) error
}

// ErrNoPush is PushMedia's answer for a channel its transport cannot serve
// from its loop.
var ErrNoPush = errors.New("transport: channel cannot be pushed")

// KeptAlive is implemented by channels whose transport keeps the
// connection alive and notices a vanished peer by itself (QUIC: keep-alive
// PINGs and the connection's idle timeout). The core sets no idle read
// deadline on them, because silence on them is normal: an idle command
// stream, stream-mode media between calls, the anchor stream of datagram
// media. (A legacy TLS connection is not KeptAlive: its clients send "D"
// and the core closes one that stays silent for its idle timeout.)
type KeptAlive interface {
	KeptAlive()
}

// Prober is implemented by command channels whose transport can check,
// quickly and cheaply, that the peer is still there. While the channel's
// session is in an answered call the core calls Probe every ProbeInterval
// from the channel's writer (never at the same time as WriteMessage, and
// after SetWriteDeadline as for a reply): a vanished peer must cost its
// partner seconds, not the transport's idle timeout. Probe sends
// something the peer acknowledges and fails once nothing at all came from
// the peer for the transport's liveness limit; the core then closes the
// channel and the session ends as if the peer had closed it.
type Prober interface {
	Probe() error
}

// Fronted is implemented by channels that name the front they came
// through, for the core's per-front counts.
type Fronted interface {
	Front() string // FrontTCP or FrontQUIC
}

// Front names, as metrics label them.
const (
	FrontTCP  = "tcp"
	FrontQUIC = "quic"
)

// ProbeInterval is how often the core probes a Prober during a call.
const ProbeInterval = 250 * time.Millisecond

// Gate decides whether a source address may connect at all: a front asks
// it before any costly work (the legacy front right after accept, before
// TLS; the QUIC front before the handshake) and refuses the connection when
// it answers false. Autoban implements it. Allow is called for every
// connection attempt, on the front's accept path: it must be cheap, must
// not block and must be safe for concurrent use.
type Gate interface {
	Allow(addr netip.Addr) bool
}

// Refusal says why a media registration was refused. The values are the
// application error codes of a QUIC stream reset.
type Refusal uint64

// Registration refusals.
const (
	RefuseMalformed Refusal = 0x101 // not "ts|sid" or "ts|sid|datagram"
	RefuseStale     Refusal = 0x102 // timestamp outside the replay window
	RefuseSession   Refusal = 0x103 // no such live session
	RefuseOrigin    Refusal = 0x104 // not from where the session logged in
	RefuseDatagrams Refusal = 0x105 // datagram mode without DATAGRAM support
	RefuseTimeout   Refusal = 0x106 // no registration within the deadline
)

var refusalText = map[Refusal]string{
	RefuseMalformed: "malformed registration",
	RefuseStale:     "timestamp outside the window",
	RefuseSession:   "no such session",
	RefuseOrigin:    "not the connection that logged in",
	RefuseDatagrams: "datagram mode not negotiated",
	RefuseTimeout:   "no registration in time",
}

func (r Refusal) Error() string {
	if t, ok := refusalText[r]; ok {
		return "media registration refused: " + t
	}
	return "media registration refused"
}

// MaxMessage is the size of a buffer that always holds one legacy media
// message whole: the largest TLS record plaintext.
const MaxMessage = 16384

// Handler serves the connections a front accepts. The core implements it.
// Both methods block until the connection ends, and close it.
type Handler interface {
	ServeCommand(ctx context.Context, c Conn)
	ServeMedia(ctx context.Context, c MediaConn)
}
