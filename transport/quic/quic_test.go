package quic_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/transport"
)

func TestCommandsOverLines(t *testing.T) {
	e := start(t, core.Config{})
	a := e.connect("alice")
	a.send("D") // a keepalive line is ignored
	a.send(now() + "|lookup|bob|1")
	a.expect(invalid) // before login; the invalid reply keeps its one "\n"
	a.send(now() + "|login|alice|wrong")
	a.expect(invalid)
	a.send(now() + "|login|alice|pw-alice")
	a.sid = a.expect("resp|login|")[3]
	a.say("lookup", "bob")
	a.expect("lookup|bob|exists")
	a.send(now() + "|lookup|bob|" + a.sid + "|x")
	a.expect(invalid)
	a.send(strings.Repeat("x", 5000)) // an overlong line is refused, the stream survives
	a.expect(invalid)
	a.say("lookup", "zed")
	a.expect("lookup|zed|doesntexist")
}

func TestStreamModeCall(t *testing.T) {
	e := start(t, core.Config{})
	a, b := e.online("alice", false), e.online("bob", false)
	call(t, a, b)
	var sent bytes.Buffer
	for i := range 50 {
		sent.Write(frame(i))
		a.sendMedia(frame(i))
	}
	if got := b.readStream(sent.Len()); !bytes.Equal(got, sent.Bytes()) {
		t.Fatal("stream media not byte-exact")
	}
	b.sendMedia(frame(7))
	if got := a.readStream(32); !bytes.Equal(got, frame(7)) {
		t.Fatal("stream media back not byte-exact")
	}
	a.say("end", "bob")
	b.expect("call|end|alice")
}

func TestDatagramModeCall(t *testing.T) {
	e := start(t, core.Config{})
	a, b := e.online("alice", true), e.online("bob", true)
	call(t, a, b)
	// Loopback loses nothing: every datagram arrives, one packet each.
	for i := range 50 {
		a.sendMedia(frame(i))
		if got := b.readDatagram(); !bytes.Equal(got, frame(i)) {
			t.Fatalf("datagram %d: got %q", i, got)
		}
		b.sendMedia(frame(100 + i))
		if got := a.readDatagram(); !bytes.Equal(got, frame(100+i)) {
			t.Fatalf("datagram back %d: got %q", i, got)
		}
	}
}

// Stream mode to datagram mode and back: a stream's bytes become datagrams
// no larger than the negotiated maximum; datagrams become stream bytes in
// arrival order.
func TestStreamToDatagram(t *testing.T) {
	e := start(t, core.Config{})
	s, d := e.online("alice", false), e.online("bob", true)
	call(t, s, d)
	big := bytes.Repeat([]byte("0123456789"), 600) // 6000 bytes: more than one datagram
	s.sendMedia(big)
	var got []byte
	for len(got) < len(big) {
		dg := d.readDatagram()
		if len(dg) > 1500 {
			t.Fatalf("datagram of %d bytes", len(dg))
		}
		got = append(got, dg...)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("stream→datagram media garbled")
	}
	for i := range 10 {
		d.sendMedia(frame(i))
		if got := s.readStream(32); !bytes.Equal(got, frame(i)) {
			t.Fatalf("datagram→stream frame %d garbled", i)
		}
	}
}

func TestRegistrationRefusedWithCode(t *testing.T) {
	e := start(t, core.Config{})
	a := e.online("alice", false)
	b := e.online("bob", false)
	for _, tc := range []struct {
		p    *phone
		line string
		want transport.Refusal
	}{
		{a, "garbage", transport.RefuseMalformed},
		{a, "1|" + a.sid, transport.RefuseStale},
		{a, now() + "|12345", transport.RefuseSession},
		{b, now() + "|" + a.sid, transport.RefuseOrigin}, // alice's session from bob's connection
	} {
		st, err := tc.p.qc.OpenStreamSync(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		st.Write([]byte(tc.line + "\n"))
		st.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = st.Read(make([]byte, 1))
		var se *quicgo.StreamError
		if !errors.As(err, &se) || se.ErrorCode != quicgo.StreamErrorCode(tc.want) {
			t.Errorf("registration %q: got %v, want a reset with code %#x", tc.line, err, uint64(tc.want))
		}
	}
	// Alice's registered media still works.
	call(t, a, b)
	a.sendMedia(frame(1))
	if !bytes.Equal(b.readStream(32), frame(1)) {
		t.Fatal("media garbled")
	}
}

func TestDatagramModeNeedsNegotiation(t *testing.T) {
	e := start(t, core.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	qc, err := quicgo.DialAddr(ctx, e.addr.String(), e.tlsConfig("dtcall/1"), &quicgo.Config{}) // no datagrams
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	cmd, _ := qc.OpenStreamSync(ctx)
	cmd.Write([]byte(now() + "|login|carol|pw-carol\n"))
	buf := make([]byte, 100)
	cmd.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ := cmd.Read(buf)
	sid := strings.Split(strings.TrimSpace(string(buf[:n])), "|")[3]
	st, _ := qc.OpenStreamSync(ctx)
	st.Write([]byte(now() + "|" + sid + "|datagram\n"))
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = st.Read(buf)
	var se *quicgo.StreamError
	if !errors.As(err, &se) || se.ErrorCode != quicgo.StreamErrorCode(transport.RefuseDatagrams) {
		t.Fatalf("got %v, want a reset with code %#x", err, uint64(transport.RefuseDatagrams))
	}
}

func TestALPNMismatchRefused(t *testing.T) {
	e := start(t, core.Config{})
	_, _, err := e.dialQUIC("h3")
	if err == nil || !strings.Contains(err.Error(), "no application protocol") {
		t.Fatalf("dial with ALPN h3: %v, want a refusal naming the application protocol", err)
	}
}

func TestWrongCertificateRefused(t *testing.T) {
	e := start(t, core.Config{})
	e.cert.DER = append([]byte{0}, e.cert.DER...) // the client pins another certificate
	_, _, err := e.dialQUIC("dtcall/1")
	if err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Fatalf("dial with a wrong pin: %v", err)
	}
}

// Closing the QUIC connection is the client leaving: the partner is told.
func TestConnectionLossDrops(t *testing.T) {
	e := start(t, core.Config{})
	a, b := e.online("alice", true), e.online("bob", false)
	call(t, a, b)
	b.qc.CloseWithError(0, "")
	a.expect("call|drop|" + a.sid)
	c := e.online("carol", false)
	a.say("call", "carol")
	a.expect("ring|available|carol")
	c.expect("ring|incoming|alice")
	c.qc.CloseWithError(0, "")
	a.expect("call|end|carol")
}

// Relogin over QUIC closes the old connection; the new one works.
func TestRelogin(t *testing.T) {
	e := start(t, core.Config{})
	old := e.online("alice", false)
	fresh := e.online("alice", true)
	select {
	case <-old.qc.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("old connection still open after relogin")
	}
	b := e.online("bob", true)
	call(t, fresh, b)
	fresh.sendMedia(frame(3))
	if !bytes.Equal(b.readDatagram(), frame(3)) {
		t.Fatal("media garbled")
	}
}

// A client that moves to a new local address mid-call keeps its call: media
// flows before, during and after the switch, and nobody is told of a drop.
func TestMigrationKeepsCall(t *testing.T) {
	for _, dgram := range []bool{false, true} {
		t.Run(map[bool]string{false: "stream", true: "datagram"}[dgram], func(t *testing.T) {
			e := start(t, core.Config{})
			a, b := e.online("alice", dgram), e.online("bob", false)
			call(t, a, b)
			exchange := func(i int) time.Duration {
				t0 := time.Now()
				a.sendMedia(frame(i))
				if got := b.readStream(32); !bytes.Equal(got, frame(i)) {
					t.Fatalf("frame %d alice→bob garbled", i)
				}
				b.sendMedia(frame(i))
				var got []byte
				if dgram {
					got = a.readDatagram()
				} else {
					got = a.readStream(32)
				}
				if !bytes.Equal(got, frame(i)) {
					t.Fatalf("frame %d bob→alice garbled", i)
				}
				return time.Since(t0)
			}
			for i := range 10 {
				exchange(i)
			}
			// The new path: a new UDP socket (a new local port, as after a
			// switch from Wi-Fi to mobile data). The old one stays open until
			// the connection ends: closing it would kill the connection.
			pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			tr := &quicgo.Transport{Conn: pc}
			defer func() { tr.Close(); pc.Close() }()
			path, err := a.qc.AddPath(tr)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := path.Probe(ctx); err != nil {
				t.Fatalf("probe: %v", err)
			}
			var gap time.Duration
			switched := make(chan error, 1)
			go func() { switched <- path.Switch() }()
			for i := 10; i < 20; i++ {
				gap = max(gap, exchange(i))
			}
			if err := <-switched; err != nil {
				t.Fatalf("switch: %v", err)
			}
			if a.qc.LocalAddr().String() != pc.LocalAddr().String() {
				t.Fatalf("still on %v, want %v", a.qc.LocalAddr(), pc.LocalAddr())
			}
			for i := 20; i < 40; i++ {
				gap = max(gap, exchange(i))
			}
			a.quiet()
			b.quiet()
			t.Logf("longest media round trip around the switch: %v", gap)
		})
	}
}

// quiet checks that nothing (such as a drop notice) is waiting for p.
func (p *phone) quiet() {
	p.t.Helper()
	p.say("lookup", "barrier")
	p.expect("lookup|barrier|doesntexist")
}
