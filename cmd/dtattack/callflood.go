package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/dtcall/dtcall/client"
)

// call-flood: a logged-in user sends bursts of call/end pairs at another
// user, who reads its replies as a phone does. Before issue 10 the victim's
// reply queue filled and the server cut the victim off as a slow consumer;
// now a crowded callee is answered busy and the sender is rate-limited,
// then closed.

func init() {
	register("call-flood", "a logged-in user floods call/end pairs at another; is the victim still connected?", runCallFlood)
}

// callFloodConfig holds the mode's flags.
type callFloodConfig struct {
	server                   string
	commandPort, mediaPort   int
	quicPort                 int
	pin                      string
	transport                string
	attacker, victim         string // user:password
	attackerFrom, victimFrom string // source addresses, "" for any
	bursts, pairs            int
	gap, wait, timeout       time.Duration
	allowRemote              bool
}

func runCallFlood(args []string, stdout, stderr io.Writer) int {
	var c callFloodConfig
	fs := flag.NewFlagSet("dtattack call-flood", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.server, "server", "127.0.0.1", "server address (loopback unless --allow-remote)")
	fs.IntVar(&c.commandPort, "command-port", client.DefaultCommandPort, "legacy TLS command port")
	fs.IntVar(&c.mediaPort, "media-port", client.DefaultMediaPort, "legacy TLS media port")
	fs.IntVar(&c.quicPort, "quic-port", client.DefaultQUICPort, "QUIC port")
	fs.StringVar(&c.pin, "pin", "", "server certificate: PEM file or sha256:HEX (required)")
	fs.StringVar(&c.transport, "transport", "tcp", "tcp or quic, for both users")
	fs.StringVar(&c.attacker, "attacker", "righthand:unlucky", "the attacker's user:password")
	fs.StringVar(&c.victim, "victim", "libprohibited:feedme", "the victim's user:password")
	fs.StringVar(&c.attackerFrom, "attacker-from", "127.0.0.2", "the attacker's source address (\"\": any)")
	fs.StringVar(&c.victimFrom, "victim-from", "127.0.0.3", "the victim's source address (\"\": any)")
	fs.IntVar(&c.bursts, "bursts", 5, "bursts of call/end pairs (at most 1000)")
	fs.IntVar(&c.pairs, "pairs", 40, "call/end pairs per burst (at most 1000)")
	fs.DurationVar(&c.gap, "gap", 20*time.Millisecond, "pause between bursts")
	fs.DurationVar(&c.wait, "wait", 3*time.Second, "after the last burst, how long to wait for the server to close the attacker")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "bound on the whole run")
	fs.BoolVar(&c.allowRemote, "allow-remote", false, "allow a --server that is not a loopback address")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := c.check(); err != nil {
		fmt.Fprintln(stderr, "dtattack call-flood:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	res, err := c.run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "dtattack call-flood:", err)
		return 1
	}
	res.print(stdout, &c)
	if !res.victimConnected {
		return 1
	}
	return 0
}

func (c *callFloodConfig) check() error {
	switch {
	case c.pin == "":
		return errors.New("need --pin FILE|sha256:HEX")
	case c.transport != "tcp" && c.transport != "quic":
		return fmt.Errorf("--transport %q: want tcp or quic", c.transport)
	case c.bursts < 1 || c.bursts > 1000 || c.pairs < 1 || c.pairs > 1000:
		return errors.New("--bursts and --pairs must be 1..1000")
	case !strings.Contains(c.attacker, ":") || !strings.Contains(c.victim, ":"):
		return errors.New("--attacker and --victim are user:password")
	}
	if !c.allowRemote {
		ips, err := net.LookupIP(c.server)
		if err != nil {
			return err
		}
		for _, ip := range ips {
			if !ip.IsLoopback() {
				return fmt.Errorf("--server %s is not a loopback address (--allow-remote)", c.server)
			}
		}
	}
	return nil
}

// callFloodResult is what a run saw.
type callFloodResult struct {
	pairsSent       int
	replies         map[string]int // the attacker's replies by kind|sub
	attackerClosed  time.Duration  // after the first command of the flood; 0 if never
	victimConnected bool
	victimEvents    map[client.EventKind]int
	victimLookup    time.Duration // the victim's lookup after the flood
	victimErr       error
}

func (r *callFloodResult) print(w io.Writer, c *callFloodConfig) {
	aUser, _, _ := strings.Cut(c.attacker, ":")
	vUser, _, _ := strings.Cut(c.victim, ":")
	fmt.Fprintf(w, "call-flood over %s: %d bursts of %d call/end pairs, %v apart, from %s at %s\n",
		c.transport, c.bursts, c.pairs, c.gap, aUser, vUser)
	closed := "not closed"
	if r.attackerClosed > 0 {
		closed = "closed by the server " + r.attackerClosed.Round(time.Millisecond).String() + " after its first command"
	}
	fmt.Fprintf(w, "attacker: sent %d pairs; replies read: %d ring|available, %d ring|busy, %d invalid; %s\n",
		r.pairsSent, r.replies["ring|available"], r.replies["ring|busy"], r.replies["resp|invalid"], closed)
	yes := "no (" + fmt.Sprint(r.victimErr) + ")"
	if r.victimConnected {
		yes = "yes (a lookup answered in " + r.victimLookup.Round(time.Microsecond).String() + ")"
	}
	fmt.Fprintf(w, "victim: still connected: %s; saw %d incoming, %d ended\n",
		yes, r.victimEvents[client.Incoming], r.victimEvents[client.Ended])
}

// run logs both users in, floods, and checks the victim.
func (c *callFloodConfig) run(ctx context.Context) (*callFloodResult, error) {
	vUser, vPass, _ := strings.Cut(c.victim, ":")
	victim, err := c.dialVictim(ctx, vUser, vPass)
	if err != nil {
		return nil, fmt.Errorf("victim: %w", err)
	}
	defer victim.Close()
	var vmu sync.Mutex
	events := map[client.EventKind]int{}
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		for ev := range victim.Events() {
			vmu.Lock()
			events[ev.Kind]++
			vmu.Unlock()
		}
	}()

	aUser, aPass, _ := strings.Cut(c.attacker, ":")
	a, err := c.dialAttacker(ctx, aUser, aPass)
	if err != nil {
		return nil, fmt.Errorf("attacker: %w", err)
	}
	defer a.close()

	res := &callFloodResult{replies: map[string]int{}}
	var rmu sync.Mutex
	closedAt := make(chan time.Time, 1)
	go func() {
		for {
			m, err := a.recv()
			if err != nil {
				closedAt <- time.Now()
				return
			}
			if f := strings.Split(strings.TrimSpace(m), "|"); len(f) >= 3 {
				rmu.Lock()
				res.replies[f[1]+"|"+f[2]]++
				rmu.Unlock()
			}
		}
	}()

	call := func(verb string) error {
		return a.send(fmt.Sprintf("%d|%s|%s|%s", time.Now().Unix(), verb, vUser, a.sid))
	}
	start := time.Now()
flood:
	for b := range c.bursts {
		for range c.pairs {
			if call("call") != nil || call("end") != nil {
				break flood
			}
			res.pairsSent++
		}
		if b < c.bursts-1 {
			time.Sleep(c.gap)
		}
	}
	select {
	case t := <-closedAt:
		res.attackerClosed = t.Sub(start)
	case <-time.After(c.wait):
	case <-ctx.Done():
	}

	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	t0 := time.Now()
	_, err = victim.Lookup(lctx, aUser)
	cancel()
	res.victimLookup = time.Since(t0)
	res.victimConnected = err == nil && victim.Err() == nil
	if !res.victimConnected {
		res.victimErr = victim.Err() // why the command channel ended, or
		if res.victimErr == nil {
			res.victimErr = err // why the lookup failed
		}
	}
	a.close()
	victim.Close()
	<-evDone
	vmu.Lock()
	res.victimEvents = events
	vmu.Unlock()
	rmu.Lock()
	defer rmu.Unlock()
	res.replies = maps.Clone(res.replies) // the reader may still be counting
	return res, nil
}

// dialVictim logs the victim in with package client and registers media.
func (c *callFloodConfig) dialVictim(ctx context.Context, user, password string) (*client.Client, error) {
	o := client.Options{
		Server: c.server, CommandPort: c.commandPort, MediaPort: c.mediaPort, QUICPort: c.quicPort,
		LocalAddr: c.victimFrom, Timeout: 10 * time.Second,
	}
	if c.transport == "quic" {
		o.Transport = client.QUIC
	}
	pinOption(&o, c.pin)
	return online(ctx, o, user, password)
}

// floodLink is the attacker's raw command channel: one command per message,
// as fast as the socket takes them.
type floodLink struct {
	sid   string
	send  func(msg string) error
	recv  func() (string, error) // one reply; owned by one goroutine
	close func()
}

// dialAttacker dials the server, logs user in and registers its media
// (a caller needs media), checked by a call to itself (ring|busy).
func (c *callFloodConfig) dialAttacker(ctx context.Context, user, password string) (*floodLink, error) {
	sum, err := floodPin(c.pin)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		InsecureSkipVerify: true, // pinned below
		ServerName:         c.server,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no server certificate")
			}
			if got := sha256.Sum256(cs.PeerCertificates[0].Raw); !bytes.Equal(got[:], sum[:]) {
				return fmt.Errorf("server certificate sha256:%x is not the pinned one", got)
			}
			return nil
		},
	}
	var l *floodLink
	var register func(sid string) error
	if c.transport == "tcp" {
		l, register, err = c.dialAttackerTLS(ctx, tc)
	} else {
		l, register, err = c.dialAttackerQUIC(ctx, tc)
	}
	if err != nil {
		return nil, err
	}
	ts := func() string { return strconv.FormatInt(time.Now().Unix(), 10) }
	if err := l.send(ts() + "|login|" + user + "|" + password); err != nil {
		l.close()
		return nil, err
	}
	m, err := l.recv()
	f := strings.Split(strings.TrimSpace(m), "|")
	if err != nil || len(f) != 4 || f[1] != "resp" || f[2] != "login" {
		l.close()
		return nil, fmt.Errorf("login refused: %q %v", m, err)
	}
	l.sid = f[3]
	if err := register(l.sid); err != nil {
		l.close()
		return nil, fmt.Errorf("register media: %w", err)
	}
	for range 100 { // until the server has bound the media: ring|busy for a call to oneself
		if err := l.send(ts() + "|call|" + user + "|" + l.sid); err != nil {
			l.close()
			return nil, err
		}
		m, err := l.recv()
		if err != nil {
			l.close()
			return nil, err
		}
		if strings.Contains(m, "|ring|busy|") {
			return l, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.close()
	return nil, errors.New("media registration not confirmed")
}

// dialAttackerTLS dials the legacy ports: commands and media on TLS
// connections of their own, one message per record.
func (c *callFloodConfig) dialAttackerTLS(ctx context.Context, tc *tls.Config) (*floodLink, func(string) error, error) {
	d := tls.Dialer{Config: tc, NetDialer: &net.Dialer{Timeout: 10 * time.Second}}
	if c.attackerFrom != "" {
		d.NetDialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(c.attackerFrom)}
	}
	nc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(c.server, strconv.Itoa(c.commandPort)))
	if err != nil {
		return nil, nil, err
	}
	var media net.Conn
	buf := make([]byte, 16<<10)
	l := &floodLink{
		send: func(msg string) error {
			nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, err := nc.Write([]byte(msg))
			return err
		},
		recv: func() (string, error) {
			nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, err := nc.Read(buf)
			if n > 0 {
				return string(buf[:n]), nil
			}
			return "", err
		},
		close: func() {
			nc.Close()
			if media != nil {
				media.Close()
			}
		},
	}
	register := func(sid string) error {
		m, err := d.DialContext(ctx, "tcp", net.JoinHostPort(c.server, strconv.Itoa(c.mediaPort)))
		if err != nil {
			return err
		}
		media = m
		_, err = m.Write([]byte(strconv.FormatInt(time.Now().Unix(), 10) + "|" + sid))
		return err
	}
	return l, register, nil
}

// dialAttackerQUIC dials the QUIC front: commands as lines on the first
// stream, media registered on the second.
func (c *callFloodConfig) dialAttackerQUIC(ctx context.Context, tc *tls.Config) (*floodLink, func(string) error, error) {
	tc.MinVersion = tls.VersionTLS13
	tc.NextProtos = []string{client.ALPN}
	laddr := &net.UDPAddr{}
	if c.attackerFrom != "" {
		laddr.IP = net.ParseIP(c.attackerFrom)
	}
	uc, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, nil, err
	}
	raddr, err := net.ResolveUDPAddr("udp", net.JoinHostPort(c.server, strconv.Itoa(c.quicPort)))
	if err != nil {
		uc.Close()
		return nil, nil, err
	}
	tr := &quicgo.Transport{Conn: uc}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	qc, err := tr.Dial(dctx, raddr, tc, &quicgo.Config{MaxIdleTimeout: 60 * time.Second, KeepAlivePeriod: 15 * time.Second})
	if err != nil {
		tr.Close()
		uc.Close()
		return nil, nil, err
	}
	st, err := qc.OpenStreamSync(dctx)
	if err != nil {
		qc.CloseWithError(0, "")
		tr.Close()
		uc.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(st)
	l := &floodLink{
		send: func(msg string) error {
			st.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, err := st.Write([]byte(msg + "\n"))
			return err
		},
		recv: func() (string, error) {
			st.SetReadDeadline(time.Now().Add(30 * time.Second))
			return br.ReadString('\n')
		},
		close: func() {
			qc.CloseWithError(0, "")
			tr.Close()
			uc.Close()
		},
	}
	register := func(sid string) error {
		ms, err := qc.OpenStreamSync(ctx)
		if err != nil {
			return err
		}
		_, err = ms.Write([]byte(strconv.FormatInt(time.Now().Unix(), 10) + "|" + sid + "\n"))
		return err
	}
	return l, register, nil
}

// floodPin reads --pin: "sha256:HEX" or a PEM certificate file.
func floodPin(pin string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if h, ok := strings.CutPrefix(pin, "sha256:"); ok {
		b, err := hex.DecodeString(strings.ReplaceAll(h, ":", ""))
		if err != nil || len(b) != sha256.Size {
			return sum, fmt.Errorf("pin %q: want sha256:<64 hex digits>", pin)
		}
		return [sha256.Size]byte(b), nil
	}
	data, err := os.ReadFile(pin)
	if err != nil {
		return sum, err
	}
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return sum, fmt.Errorf("pin file %s: no PEM CERTIFICATE block", pin)
		}
		if b.Type == "CERTIFICATE" {
			return sha256.Sum256(b.Bytes), nil
		}
	}
}
