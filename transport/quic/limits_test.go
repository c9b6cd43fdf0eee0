package quic_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/transport"
	"github.com/dtcall/dtcall/transport/quic"
)

// TestStreamLimits: a client may open no unidirectional stream and
// MaxStreams bidirectional ones at once; a stream it opens besides the
// command stream before logging in is refused at once (no such session),
// and its credit comes back; after the login, media registers as usual.
func TestStreamLimits(t *testing.T) {
	e := startQUIC(t, core.Config{}, quic.Config{MaxStreams: 3})
	p := e.connect("alice")
	if _, err := p.qc.OpenUniStream(); err == nil {
		t.Fatal("opened a unidirectional stream")
	}
	p.send("D") // the command stream reaches the server
	var extra []*quicgo.Stream
	for range 2 {
		st, err := p.qc.OpenStream()
		if err != nil {
			t.Fatalf("stream %d of 3: %v", len(extra)+2, err)
		}
		extra = append(extra, st)
	}
	if _, err := p.qc.OpenStream(); err == nil {
		t.Fatal("opened a fourth bidirectional stream with MaxStreams 3")
	}
	for _, st := range extra {
		st.Write([]byte(now() + "|12345\n"))
		st.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := st.Read(make([]byte, 1))
		var se *quicgo.StreamError
		if !errors.As(err, &se) || se.ErrorCode != quicgo.StreamErrorCode(transport.RefuseSession) {
			t.Fatalf("media stream before login: %v, want a reset with code %#x", err, uint64(transport.RefuseSession))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := p.qc.OpenStreamSync(ctx) // the refused streams' credit is back
	if err != nil {
		t.Fatalf("no stream credit after the refusals: %v", err)
	}
	st.CancelWrite(0)
	st.CancelRead(0)
	e.login(p, false) // registers media on a new stream
	p.quiet()
}

// dialFrom dials from ip and reports the error; a connection made is
// closed at the end of the test.
func (e *env) tryDial(t *testing.T, ip string) (*quicgo.Conn, error) {
	t.Helper()
	tr, qc, err := e.dialFrom(net.ParseIP(ip), quic.ALPN, nil)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		qc.CloseWithError(0, "")
		tr.Close()
		tr.Conn.Close()
	})
	return qc, nil
}

// refused reports whether err is the server's CONNECTION_REFUSED.
func refused(err error) bool {
	var te *quicgo.TransportError
	return errors.As(err, &te) && te.ErrorCode == quicgo.ConnectionRefused && te.Remote
}

// TestConnectionLimits: connections beyond MaxConnsPerSource from one
// address, or beyond MaxConns in all, are refused before their handshake
// (CONNECTION_REFUSED, at once); a closed connection makes room again.
func TestConnectionLimits(t *testing.T) {
	e := startQUIC(t, core.Config{}, quic.Config{MaxConnsPerSource: 2, MaxConns: 3})
	first, err := e.tryDial(t, "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.tryDial(t, "127.0.0.2"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if _, err := e.tryDial(t, "127.0.0.2"); !refused(err) {
		t.Fatalf("third connection from one source: %v, want CONNECTION_REFUSED", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("the refusal took %v", d)
	}
	if _, err := e.tryDial(t, "127.0.0.3"); err != nil {
		t.Fatalf("another source: %v", err)
	}
	if _, err := e.tryDial(t, "127.0.0.4"); !refused(err) {
		t.Fatalf("fourth connection in all: %v, want CONNECTION_REFUSED", err)
	}
	first.CloseWithError(0, "")
	for i := 0; ; i++ { // the server hears of the close within a round trip
		_, err := e.tryDial(t, "127.0.0.2")
		if err == nil {
			break
		}
		if !refused(err) || i == 50 {
			t.Fatalf("after a close: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := e.srv.Stats()
	if st.Refused["per_source"] < 1 || st.Refused["total"] < 1 || st.Conns != 3 {
		t.Errorf("stats: %+v", st)
	}
}

// gate bans one address.
type gate netip.Addr

func (g gate) Allow(a netip.Addr) bool { return a != netip.Addr(g) }

// TestGateRefusesBeforeHandshake: a source the gate refuses gets
// CONNECTION_REFUSED; others connect and log in.
func TestGateRefusesBeforeHandshake(t *testing.T) {
	e := startQUIC(t, core.Config{}, quic.Config{Gate: gate(netip.MustParseAddr("127.0.0.5"))})
	if _, err := e.tryDial(t, "127.0.0.5"); !refused(err) {
		t.Fatalf("banned source: %v, want CONNECTION_REFUSED", err)
	}
	if _, err := e.tryDial(t, "127.0.0.6"); err != nil {
		t.Fatalf("other source: %v", err)
	}
	e.online("alice", true).quiet()
	if st := e.srv.Stats(); st.Refused["banned"] < 1 || st.Handshakes["ok"] != 2 { // a retransmitted Initial counts again
		t.Errorf("stats: %+v", st)
	}
}
