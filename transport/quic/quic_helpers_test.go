package quic_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/internal/testserver"
	"github.com/dtcall/dtcall/transport/quic"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// These tests run the real QUIC front and core on 127.0.0.1:0 and talk to
// them with quic-go clients, line by line and datagram by datagram.

type env struct {
	t      testing.TB
	core   *core.Server
	srv    *quic.Server
	addr   *net.UDPAddr
	cert   testcert.Cert
	client *quicgo.Config // for the clients dialled from now on; nil: clientConfig's default
}

// start runs a server (both fronts; these tests use QUIC) until the end of t.
func start(t testing.TB, ccfg core.Config) *env {
	t.Helper()
	return startQUIC(t, ccfg, quic.Config{})
}

// startQUIC is start with settings for the QUIC front.
func startQUIC(t testing.TB, ccfg core.Config, qcfg quic.Config) *env {
	t.Helper()
	ts := testserver.Start(t, testserver.Config{Core: ccfg, QUIC: qcfg})
	return &env{t: t, core: ts.Core, srv: ts.QUIC, addr: ts.QUICAddr, cert: ts.Cert}
}

// phone is a QUIC client: one connection, a command stream, a media stream.
type phone struct {
	t     testing.TB
	e     *env
	user  string
	tr    *quicgo.Transport
	qc    *quicgo.Conn
	cmd   *quicgo.Stream
	lines *bufio.Reader
	media *quicgo.Stream
	dgram bool
	sid   string
}

func (e *env) tlsConfig(alpn string) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true,
		NextProtos:         []string{alpn},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if !bytes.Equal(cs.PeerCertificates[0].Raw, e.cert.DER) {
				return errors.New("server certificate does not match the pinned one")
			}
			return nil
		},
	}
}

// dialQUIC connects from a socket of its own (so that it can migrate).
func (e *env) dialQUIC(alpn string) (*quicgo.Transport, *quicgo.Conn, error) {
	return e.dialFrom(net.IPv4(127, 0, 0, 1), alpn, nil)
}

// dialFrom connects from a socket of its own on ip, through wrap if set.
func (e *env) dialFrom(ip net.IP, alpn string, wrap func(*net.UDPConn) net.PacketConn) (*quicgo.Transport, *quicgo.Conn, error) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		return nil, nil, err
	}
	var pc net.PacketConn = udp
	if wrap != nil {
		pc = wrap(udp)
	}
	tr := &quicgo.Transport{Conn: pc}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	qc, err := tr.Dial(ctx, e.addr, e.tlsConfig(alpn), e.clientConfig())
	if err != nil {
		tr.Close()
		pc.Close()
		return nil, nil, err
	}
	return tr, qc, nil
}

// clientConfig is the clients' QUIC configuration.
func (e *env) clientConfig() *quicgo.Config {
	if e.client != nil {
		return e.client.Clone()
	}
	return &quicgo.Config{EnableDatagrams: true, KeepAlivePeriod: 5 * time.Second}
}

func (e *env) connect(user string) *phone {
	e.t.Helper()
	return e.connectVia(user, nil)
}

// connectVia is connect through a wrapped client socket.
func (e *env) connectVia(user string, wrap func(*net.UDPConn) net.PacketConn) *phone {
	e.t.Helper()
	tr, qc, err := e.dialFrom(net.IPv4(127, 0, 0, 1), quic.ALPN, wrap)
	if err != nil {
		e.t.Fatalf("%s: dial: %v", user, err)
	}
	cmd, err := qc.OpenStreamSync(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	p := &phone{t: e.t, e: e, user: user, tr: tr, qc: qc, cmd: cmd, lines: bufio.NewReader(cmd)}
	e.t.Cleanup(p.close)
	return p
}

func (p *phone) close() {
	p.qc.CloseWithError(0, "")
	p.tr.Close()
	p.tr.Conn.Close()
}

func (e *env) online(user string, dgram bool) *phone {
	e.t.Helper()
	return e.login(e.connect(user), dgram)
}

// login logs p in and registers its media.
func (e *env) login(p *phone, dgram bool) *phone {
	e.t.Helper()
	p.send(now() + "|login|" + p.user + "|pw-" + p.user)
	p.sid = p.expect("resp|login|")[3]
	p.registerMedia(dgram)
	return p
}

func now() string { return strconv.FormatInt(time.Now().Unix(), 10) }

func (p *phone) send(line string) {
	p.t.Helper()
	if _, err := p.cmd.Write([]byte(line + "\n")); err != nil {
		p.t.Fatalf("%s: write: %v", p.user, err)
	}
}

func (p *phone) say(verb, arg string) {
	p.t.Helper()
	p.send(now() + "|" + verb + "|" + arg + "|" + p.sid)
}

// recv returns the next line, skipping the server's keepalive lines ("D",
// sent every 250 ms during a call), as clients do.
func (p *phone) recv() string {
	p.t.Helper()
	p.cmd.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := p.lines.ReadString('\n')
		if err != nil {
			p.t.Fatalf("%s: read line: %v", p.user, err)
		}
		if line != "D\n" {
			return line
		}
	}
}

const invalid = "resp|invalid|command\n"

// expect reads a line: exactly one "\n" at its end, four fields, and the
// rest after the server time starting with want.
func (p *phone) expect(want string) []string {
	p.t.Helper()
	line := p.recv()
	f := strings.Split(strings.TrimSuffix(line, "\n"), "|")
	if len(f) != 4 || strings.HasSuffix(strings.TrimSuffix(line, "\n"), "\n") {
		p.t.Fatalf("%s: bad line %q", p.user, line)
	}
	rest := strings.Join(f[1:], "|") + "\n"
	if !strings.HasPrefix(rest, strings.TrimSuffix(want, "\n")) || (want == invalid && rest != invalid) {
		p.t.Fatalf("%s: got %q, want %q", p.user, rest, want)
	}
	return f
}

// registerMedia opens a media stream, registers it and waits until it is
// bound (a call to oneself answers busy with media, invalid without).
func (p *phone) registerMedia(dgram bool) {
	p.t.Helper()
	m, err := p.qc.OpenStreamSync(context.Background())
	if err != nil {
		p.t.Fatal(err)
	}
	reg := now() + "|" + p.sid
	if dgram {
		reg += "|datagram"
	}
	if _, err := m.Write([]byte(reg + "\n")); err != nil {
		p.t.Fatal(err)
	}
	p.media, p.dgram = m, dgram
	for range 200 {
		p.say("call", p.user)
		if strings.Contains(p.recv(), "|ring|busy|") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatalf("%s: media registration never took effect", p.user)
}

func (p *phone) sendMedia(b []byte) {
	p.t.Helper()
	var err error
	if p.dgram {
		err = p.qc.SendDatagram(b)
	} else {
		_, err = p.media.Write(b)
	}
	if err != nil {
		p.t.Fatalf("%s: send media: %v", p.user, err)
	}
}

// readStream reads exactly n bytes of stream-mode media.
func (p *phone) readStream(n int) []byte {
	p.t.Helper()
	p.media.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(p.media, b); err != nil {
		p.t.Fatalf("%s: read media: %v", p.user, err)
	}
	return b
}

// readDatagram returns the next datagram.
func (p *phone) readDatagram() []byte {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := p.qc.ReceiveDatagram(ctx)
	if err != nil {
		p.t.Fatalf("%s: receive datagram: %v", p.user, err)
	}
	return b
}

func call(t testing.TB, a, b *phone) {
	t.Helper()
	a.say("call", b.user)
	a.expect("ring|available|" + b.user)
	b.expect("ring|incoming|" + a.user)
	b.say("accept", a.user)
	a.expect("call|start|" + b.user)
	b.expect("call|start|" + a.user)
}

func frame(i int) []byte {
	f := fmt.Sprintf("frame-%06d|", i)
	return []byte(f + strings.Repeat(".", 32-len(f)))
}
