package tcp_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	ztls "github.com/zmap/zcrypto/tls"
	"go.uber.org/goleak"

	"github.com/dtcall/dtcall/accounts"
	"github.com/dtcall/dtcall/cluster/natstest"
	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/internal/testserver"
	"github.com/dtcall/dtcall/transport/tcp"
	"github.com/dtcall/dtcall/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// These end-to-end tests run the real legacy front and core on 127.0.0.1:0
// with real TLS and talk bytes to them the way deployed clients do: one
// Write per command, one Read of up to 1024 bytes per reply.

// sampleUsers are the three accounts of the old distribution (p=16 hashes,
// about 0.6-0.8 s per check).
const sampleUsers = `
righthand $s1$0e0810$gSWZo3ioKoQ5I8kCbc8A9A==$v3p1UXAOn9siRjdpgfxb+cDZtqwVobgQ8wZcDKZzT7WxsufEAv8EuhWA/xxAIzLJIp1HaRwbWm28Dz46nSxvZA==
libprohibited $s1$0e0810$UorbGUUleeaoXcBxk4UefQ==$X17rxyN7nVt7kNmFVB2P89+XeH7++DVvLOgrPlscLRijkivmPPpczSE/VGH8eDrnkCSkND+xYzixFdNsvAiXHw==
zapper $s1$0e0810$3V4SumpOHS9nybc3F1i/OQ==$oTbAFn7wgw0be1a5OMi//kFD3JK7DM3akxk2YJkHwVS2ug2j+reDcE2XSpRg+9CFOKuLjZqAb4vUNjubSFDLZQ==
`

var samplePasswords = map[string]string{"righthand": "unlucky", "libprohibited": "feedme", "zapper": "railgun"}

// env is one running server, or two nodes of a cluster (layout).
type env struct {
	t      testing.TB
	layout layout
	nodes  []*node // one per server; node 0 is also core, front, cmdAddr and mediaAddr
	cert   testcert.Cert

	// Node 0, for the tests that run on one server only.
	core      *core.Server
	front     *tcp.Server
	cmdAddr   string
	mediaAddr string
}

// node is one server of an env.
type node struct {
	*testserver.Server
	index int
}

// layout is how an env lays out its servers and users.
type layout int

const (
	// oneNode is a single server: every connection reaches it.
	oneNode layout = iota
	// twoNodes is two nodes of a cluster on a real (embedded) nats-server,
	// serving one certificate, with the same core and tcp config. Each user
	// has a home node for its command connection (homeIndex), and its
	// media connection always reaches the other node: every media
	// connection is split (docs/CLUSTER.md, "Split legacy connections").
	twoNodes
)

// layouts are the layouts the protocol tests run in.
var layouts = []layout{oneNode, twoNodes}

func (l layout) String() string { return [...]string{"one node", "two nodes, split media"}[l] }

// eachLayout runs f as a parallel subtest per layout.
func eachLayout(t *testing.T, f func(t *testing.T, l layout)) {
	t.Helper()
	for _, l := range layouts {
		t.Run(l.String(), func(t *testing.T) {
			t.Parallel()
			f(t, l)
		})
	}
}

// homeIndex is the node of user's command connection in the two-node
// layout: alice and carol on node 0, bob and dave on node 1, any other
// user (the sample accounts, unknown names) on node 0.
func homeIndex(user string) int {
	switch user {
	case "bob", "dave":
		return 1
	}
	return 0
}

// start runs a single server with the test and the sample accounts until
// the end of t.
func start(t testing.TB, ccfg core.Config, tcfg tcp.Config) *env {
	t.Helper()
	return oneNode.start(t, ccfg, tcfg)
}

// start runs the servers of layout l, each with ccfg and tcfg and the test
// and sample accounts, until the end of t. It returns once the nodes of a
// cluster hear each other and have read the presence bucket.
func (l layout) start(t testing.TB, ccfg core.Config, tcfg tcp.Config) *env {
	t.Helper()
	sample, err := accounts.ParseUsers(strings.NewReader(sampleUsers))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, layout: l, cert: testcert.Write(t)} // one name behind the balancer: one certificate
	cfg := testserver.Config{Core: ccfg, Legacy: tcfg, Accounts: sample, Cert: e.cert}
	n := 1
	if l == twoNodes {
		cfg.NATS, n = natstest.StartServer(t).URL(), 2
	}
	for i := range n {
		cfg.Name = "node" + strconv.Itoa(i)
		e.nodes = append(e.nodes, &node{Server: testserver.Start(t, cfg), index: i})
	}
	e.waitNodes()
	n0 := e.nodes[0]
	e.core, e.front, e.cmdAddr, e.mediaAddr = n0.Core, n0.Legacy, n0.CommandAddr, n0.MediaAddr
	return e
}

// waitNodes waits until every node of a cluster hears the others and has
// read the presence bucket.
func (e *env) waitNodes() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range e.nodes {
		for n.Node != nil && (n.Node.Stats().NodesAlive != len(e.nodes)-1 || !n.Node.Stats().Synced) {
			if time.Now().After(deadline) {
				e.t.Fatalf("node %s hears %d nodes, want %d", n.Node.Node(), n.Node.Stats().NodesAlive, len(e.nodes)-1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// home is the node of user's command connection.
func (e *env) home(user string) *node {
	if e.layout == oneNode {
		return e.nodes[0]
	}
	return e.nodes[homeIndex(user)]
}

// mediaNode is the node user's media connection reaches: the home on one
// node, the other node in a cluster.
func (e *env) mediaNode(user string) *node {
	if e.layout == oneNode {
		return e.nodes[0]
	}
	return e.nodes[1-homeIndex(user)]
}

// waitLocated waits until every node knows that user's session is sid:
// presence reaches the other nodes asynchronously, and until it has, a
// call from there finds the user offline and a media connection there
// finds no session. A single server knows at once.
func (e *env) waitLocated(user, sid string) {
	e.t.Helper()
	for _, n := range e.nodes {
		if n.Node == nil {
			continue
		}
		for i := 0; ; i++ {
			if loc, ok := n.Node.Lookup(user); ok && strconv.FormatUint(uint64(loc.Session), 10) == sid {
				break
			}
			if i == 500 {
				e.t.Fatalf("%s: %s's session %s never seen", n.Node.Node(), user, sid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// directWrites sums the direct media writes of every node's core.
func (e *env) directWrites() int64 {
	var sum int64
	for _, n := range e.nodes {
		sum += n.Core.Stats().DirectWrites
	}
	return sum
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// tlsKind is how a test client speaks TLS.
type tlsKind int

const (
	modern    tlsKind = iota // crypto/tls defaults: TLS 1.3
	ecdhe12                  // TLS 1.2 only, ECDHE suites: Java on TLS 1.2
	android17                // TLS 1.2 offering only TLS_DHE_RSA_WITH_AES_256_GCM_SHA384
)

func (k tlsKind) String() string { return [...]string{"modern", "ecdhe12", "android2017"}[k] }

const suiteDHE = 0x009f

// dial connects to addr from the local address from ("" = any) and shakes
// hands, pinning the server certificate as deployed clients do.
func (e *env) dial(addr string, kind tlsKind, from string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	defer raw.SetDeadline(time.Time{})
	pin := func(der []byte) error {
		if !bytes.Equal(der, e.cert.DER) {
			return errors.New("server certificate does not match the pinned one")
		}
		return nil
	}
	if kind == android17 {
		c := ztls.Client(raw, &ztls.Config{
			InsecureSkipVerify: true, CipherSuites: []uint16{suiteDHE}, ForceSuites: true,
			MinVersion: ztls.VersionTLS12, MaxVersion: ztls.VersionTLS12,
		})
		if err := c.Handshake(); err != nil {
			raw.Close()
			return nil, err
		}
		st := c.ConnectionState()
		if st.CipherSuite != suiteDHE || len(st.PeerCertificates) == 0 {
			raw.Close()
			return nil, fmt.Errorf("negotiated suite %#04x, want DHE", st.CipherSuite)
		}
		if err := pin(st.PeerCertificates[0].Raw); err != nil {
			raw.Close()
			return nil, err
		}
		return c, nil
	}
	cfg := &tls.Config{
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return pin(cs.PeerCertificates[0].Raw)
		},
	}
	if kind == ecdhe12 {
		cfg.MaxVersion = tls.VersionTLS12
	}
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// phone is a legacy client: a command connection and a media connection.
type phone struct {
	t     testing.TB
	e     *env
	user  string
	kind  tlsKind
	cmd   net.Conn
	media net.Conn
	sid   string
}

// connect opens the command connection of a phone that is not logged in.
func (e *env) connect(user string, kind tlsKind) *phone {
	e.t.Helper()
	c, err := e.dial(e.home(user).CommandAddr, kind, "")
	if err != nil {
		e.t.Fatalf("%s: dial command port (%v): %v", user, kind, err)
	}
	e.t.Cleanup(func() { c.Close() })
	return &phone{t: e.t, e: e, user: user, kind: kind, cmd: c}
}

// online logs user in with its test password and registers media.
func (e *env) online(user string, kind tlsKind) *phone {
	e.t.Helper()
	p := e.connect(user, kind)
	p.login("pw-" + user)
	p.registerMedia()
	return p
}

func (p *phone) login(password string) {
	p.t.Helper()
	p.send(now() + "|login|" + p.user + "|" + password)
	p.sid = p.expect("resp|login|")[3]
	p.e.waitLocated(p.user, p.sid)
}

// mediaAddr is the media port p's media connections dial.
func (p *phone) mediaAddr() string { return p.e.mediaNode(p.user).MediaAddr }

func now() string { return strconv.FormatInt(time.Now().Unix(), 10) }

// send writes one command: one Write, one TLS record.
func (p *phone) send(msg string) {
	p.t.Helper()
	if _, err := p.cmd.Write([]byte(msg)); err != nil {
		p.t.Fatalf("%s: write %q: %v", p.user, msg, err)
	}
}

// say sends ts|verb|arg|sid.
func (p *phone) say(verb, arg string) {
	p.t.Helper()
	p.send(now() + "|" + verb + "|" + arg + "|" + p.sid)
}

// recv reads one reply the way deployed clients do: a single read into a
// 1024-byte buffer.
func (p *phone) recv() string {
	p.t.Helper()
	buf := make([]byte, 1024)
	// 30 s: an unknown name's decoy may be one of the sample p=16 hashes
	// (its Store's key decides), and one such check takes 5 s under -race
	// on an idle 2-core machine, twice that in CI beside other packages.
	p.cmd.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := p.cmd.Read(buf)
	if err != nil {
		p.t.Fatalf("%s: read reply: %v", p.user, err)
	}
	return string(buf[:n])
}

// expect reads one reply and checks it: exactly four fields, the server's
// time within a few seconds of ours, and the rest starting with want.
func (p *phone) expect(want string) []string {
	p.t.Helper()
	m := p.recv()
	f := strings.Split(m, "|")
	if len(f) != 4 {
		p.t.Fatalf("%s: reply %q does not split into 4 fields", p.user, m)
	}
	st, err := strconv.ParseInt(f[0], 10, 64)
	if d := time.Now().Unix() - st; err != nil || d < -5 || d > 5 {
		p.t.Fatalf("%s: reply %q: bad server time", p.user, m)
	}
	if rest := strings.Join(f[1:], "|"); !strings.HasPrefix(rest, want) || (want == invalid && rest != invalid) {
		p.t.Fatalf("%s: got %q, want %q", p.user, rest, want)
	}
	return f
}

const invalid = "resp|invalid|command\n"

// quiet checks that nothing is waiting for p: a lookup's answer must be the
// very next record.
func (p *phone) quiet() {
	p.t.Helper()
	p.say("lookup", "quiet-barrier")
	p.expect("lookup|quiet-barrier|doesntexist")
}

// registerMedia opens a media connection, registers it and waits until it
// is bound. Clients cannot see that (there is no reply), so the test asks
// the server the only way a client can: a call to oneself answers
// ring|busy with media and invalid without.
func (p *phone) registerMedia() {
	p.t.Helper()
	if p.media != nil {
		// The old media connection must be gone on the server first, or the
		// check below could see it rather than the new one.
		p.media.Close()
		p.waitMediaGone()
	}
	m, err := p.e.dial(p.mediaAddr(), p.kind, "")
	if err != nil {
		p.t.Fatalf("%s: dial media port: %v", p.user, err)
	}
	p.t.Cleanup(func() { m.Close() })
	p.registerMediaOn(m)
}

// registerMediaOn registers m as p's media connection and waits until it
// is bound.
func (p *phone) registerMediaOn(m net.Conn) {
	p.t.Helper()
	p.checkSplit()
	if _, err := m.Write([]byte(now() + "|" + p.sid)); err != nil {
		p.t.Fatal(err)
	}
	p.media = m
	for range 200 {
		p.say("call", p.user)
		if strings.Contains(p.recv(), "|ring|busy|") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatalf("%s: media registration never took effect", p.user)
}

// checkSplit checks, in a cluster, that p's media connection will reach a
// node that does not hold p's session but knows it is the home's: the
// registration can only bind through the home (a media bind).
func (p *phone) checkSplit() {
	p.t.Helper()
	home, media := p.e.home(p.user), p.e.mediaNode(p.user)
	if home == media {
		return
	}
	sid, err := strconv.ParseUint(p.sid, 10, 64)
	if err != nil {
		p.t.Fatalf("%s: session id %q: %v", p.user, p.sid, err)
	}
	if at, ok := media.Node.LocateSession(wire.SessionID(sid)); !ok || at != home.Node.Node() {
		p.t.Fatalf("%s: media node %s locates session %s at %q (%v), want the home %s",
			p.user, media.Node.Node(), p.sid, at, ok, home.Node.Node())
	}
}

// waitMediaGone waits until a call to oneself is refused: no media bound.
func (p *phone) waitMediaGone() {
	p.t.Helper()
	for range 200 {
		p.say("call", p.user)
		if strings.HasSuffix(p.recv(), "|resp|invalid|command\n") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatalf("%s: the server kept the old media connection", p.user)
}

func (p *phone) sendMedia(b []byte) {
	p.t.Helper()
	if _, err := p.media.Write(b); err != nil {
		p.t.Fatalf("%s: write media: %v", p.user, err)
	}
}

// sendMediaOutsideCall sends b while p is in no call and waits until p's
// home has taken it (and so discarded it). Without the wait, bytes of a
// split connection may still be on their way from the media node to the
// home when the next call starts there, and be relayed in that call: the
// client's two connections are not ordered with each other, on one node
// either, but there the media read nearly always wins.
func (p *phone) sendMediaOutsideCall(b []byte) {
	p.t.Helper()
	home := p.e.home(p.user).Core
	want := home.Stats().MediaBytesIn + int64(len(b))
	p.sendMedia(b)
	for i := 0; home.Stats().MediaBytesIn < want; i++ {
		if i == 500 {
			p.t.Fatalf("%s: the home never took %d media bytes sent outside a call", p.user, len(b))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readMedia reads exactly n media bytes.
func (p *phone) readMedia(n int) []byte {
	p.t.Helper()
	p.media.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(p.media, b); err != nil {
		p.t.Fatalf("%s: read %d media bytes: %v", p.user, n, err)
	}
	return b
}

// call makes a ring a call to b and b accept it.
func call(t testing.TB, a, b *phone) {
	t.Helper()
	a.say("call", b.user)
	a.expect("ring|available|" + b.user)
	b.expect("ring|incoming|" + a.user)
	b.say("accept", a.user)
	a.expect("call|start|" + b.user)
	b.expect("call|start|" + a.user)
}

// frames returns n 32-byte AMR-sized frames numbered from first.
func frames(first, n int) []byte {
	var b bytes.Buffer
	for i := first; i < first+n; i++ {
		f := fmt.Sprintf("frame-%06d|", i)
		b.WriteString(f + strings.Repeat(".", 32-len(f)))
	}
	return b.Bytes()
}
