// Package client is the reference Go client of dtcall: one API over the
// legacy TLS pair (PROTOCOL.md sections 1-4) and the QUIC front (section
// 6, stream or datagram media).
//
// # Connecting
//
// Dial connects the command channel: a TLS connection to the command port
// (TCP), or a QUIC connection (ALPN "dtcall/1", TLS 1.3) and its first
// stream (QUIC, QUICDatagram). Options choose exactly one way to check
// the server's certificate:
//   - a pin, for dtoperator's self-signed certificates: of the whole leaf
//     certificate (Options.PinFile, or PinSHA256 "sha256:<hex>") or of
//     its public key, which survives a renewal with the same key
//     (Options.PinKeyFile, or PinSHA256 "spki:<hex>" or
//     "sha256/<base64>"). dtoperator logs each form at start. A mismatch
//     fails Dial with a *PinError.
//   - a CA, like any TLS client: Options.CAFile or SystemRoots, and the
//     server's name (Options.Server, or ServerName).
//
// Login authenticates; RegisterMedia opens the media channel (a TLS
// connection to the media port, or the next QUIC stream) and waits until
// the server has bound it. A user without media is "not available" to
// callers and cannot call.
//
// # Requests and notifications
//
// Login, Lookup and Call send a command and return its reply. Accept,
// Reject, End and Timeout have no reply unless the server refuses them, so
// the client follows each with a lookup of its own name and returns once
// that is answered: nil if the command was carried out, a *RefusedError
// if not. Every refusal (ts|resp|invalid|command) is a *RefusedError,
// errors.Is(err, ErrRefused).
//
// One goroutine per client reads the command channel. Replies come in the
// order of the requests; notifications (incoming, start, reject, end,
// timeout, drop) may arrive between a request and its reply and go to
// Events. A request whose caller gave up (ctx, Options.Timeout) keeps its
// place, so that a late reply is never taken for the next request's.
//
// # Media
//
// Media carries opaque bytes. Over TCP and QUIC stream mode it is a byte
// stream: the server keeps order but not write boundaries. In datagram
// mode each WriteMedia is one QUIC DATAGRAM and each ReadMedia returns
// one; lost datagrams are not resent. Today's payload is AMR-NB: 32-byte
// frames, 50 per second each way. After a call, clients register fresh
// media (RegisterMedia again), which flushes stale audio.
//
// Media flows only while a call is up (between Started and Ended or
// Dropped); the server discards what arrives outside one.
//
// # Network changes
//
// A QUIC client keeps its connection, and so its call, across an address
// change. Migrate moves it to a new local socket (quic-go's AddPath,
// Probe, Switch).
//
// # Lifetimes
//
// Close closes media and command channels and waits for every goroutine
// the client started; the server then ends the session (a call in
// progress is dropped for the peer). Events is closed when the command
// channel ends for any reason, and Err says why. The client sends a
// keepalive every Options.Keepalive (2 minutes by default); the server
// closes connections silent for 10 minutes.
package client
