package reuseport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/dtcall/dtcall/internal/testcert"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestProgramSeesUDPPayload checks the premise of the steering program:
// the kernel runs a reuseport program on the UDP payload, offset 0 being
// its first byte (net/core/sock_reuseport.c, run_bpf_filter, pulls the
// UDP header before it runs the program). A program that returns the
// payload's first byte as the socket index sends a datagram starting with
// 0 to socket 0 and one starting with 1 to socket 1, from the same source.
func TestProgramSeesUDPPayload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	first, err := ListenConfig().ListenPacket(ctx, "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := ListenConfig().ListenPacket(ctx, "udp", first.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	prog := []rawInsn{{0x30, 0, 0, 0}, {0x16, 0, 0, 0}} // ldb [0]; ret a
	if err := attachRaw(second.(*net.UDPConn), prog); err != nil {
		t.Fatal(err)
	}
	src, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for round := range 5 {
		for idx, sock := range []net.PacketConn{first, second} {
			msg := []byte{byte(idx), byte(round)}
			if _, err := src.WriteTo(msg, first.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			sock.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 16)
			n, _, err := sock.ReadFrom(buf)
			if err != nil || !bytes.Equal(buf[:n], msg) {
				t.Fatalf("socket %d: read %x, %v; want the datagram %x steered to it", idx, buf[:n], err, msg)
			}
		}
	}
}

// TestProgram runs the steering program's decisions on made-up packets
// through the kernel: the same setup, a datagram per case.
func TestProgram(t *testing.T) {
	t.Parallel()
	const mine, theirs = 7, 6
	ctx := context.Background()
	old, err := ListenConfig().ListenPacket(ctx, "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	cur, err := ListenUDP(ctx, old.LocalAddr().String(), mine)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	long := func(first byte, dcid byte) []byte { return []byte{first, 0, 0, 0, 1, 8, dcid, 1, 2, 3} }
	tests := []struct {
		name string
		pkt  []byte
		want int // socket index
	}{
		{"short, my CID", []byte{0x40, mine, 1, 2, 3, 4, 5, 6, 7, 8}, newSocket},
		{"short, their CID", []byte{0x43, theirs, 1, 2, 3, 4, 5, 6, 7, 8}, oldSocket},
		{"Initial, any DCID", long(0xc0, theirs), newSocket},
		{"Initial with bits", long(0xc3, 0), newSocket},
		{"0-RTT", long(0xd1, theirs), newSocket},
		{"Handshake, my CID", long(0xe0, mine), newSocket},
		{"Handshake, their CID", long(0xe0, theirs), oldSocket},
		{"runt long header", []byte{0xe0, 0, 0}, oldSocket},
	}
	src, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	socks := []net.PacketConn{old, cur}
	for _, tt := range tests {
		if _, err := src.WriteTo(tt.pkt, old.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		sock := socks[tt.want]
		sock.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 64)
		n, _, err := sock.ReadFrom(buf)
		if err != nil || !bytes.Equal(buf[:n], tt.pkt) {
			t.Errorf("%s: socket %d read %x, %v; want the packet", tt.name, tt.want, buf[:n], err)
		}
	}
}

// TestRestartKeepsQUICConnections: an old QUIC front with 20 connections
// from 20 client sockets; a new front joins the port. With the steering
// program, every old connection keeps exchanging data for 2 s and new
// connections land on the new front. Without it (the premise), the
// kernel's hash moves some old flows to the new socket, which drops their
// packets: those connections stall.
func TestRestartKeepsQUICConnections(t *testing.T) {
	t.Parallel()
	for _, steer := range []bool{true, false} {
		t.Run(fmt.Sprintf("steer=%v", steer), func(t *testing.T) {
			t.Parallel()
			broken, landed := restart(t, steer)
			t.Logf("steering %v: %d of %d old connections broke after the new socket joined; "+
				"%d of %d new connections landed on the new front", steer, broken, oldConns, landed, newConns)
			if steer && (broken != 0 || landed != newConns) {
				t.Errorf("with steering: %d old connections broke (want 0), %d of %d new ones on the new front",
					broken, landed, newConns)
			}
			if !steer && broken == 0 {
				t.Errorf("without steering no old connection broke: the kernel kept every flow (premise wrong?)")
			}
		})
	}
}

const (
	oldConns = 20
	newConns = 10
)

// restart runs one restart and returns how many old connections broke and
// how many new ones the new front accepted.
func restart(t *testing.T, steer bool) (broken, landed int) {
	cert := testcert.Write(t)
	pair, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	srvTLS := &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"test"}}
	old := startFront(t, "127.0.0.1:0", 1, steer, srvTLS)
	addr := old.udp.LocalAddr().String()
	var conns []*echoClient
	for range oldConns {
		conns = append(conns, dialEcho(t, addr))
	}
	for _, c := range conns {
		if err := c.roundTrip(time.Second); err != nil {
			t.Fatalf("before the new front: %v", err)
		}
	}
	cur := startFront(t, addr, 2, steer, srvTLS)
	var failed atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
				if err := c.roundTrip(500 * time.Millisecond); err != nil {
					failed.Add(1)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	before := cur.accepted.Load()
	for range newConns {
		c := dialEcho(t, addr)
		if err := c.roundTrip(time.Second); err != nil && steer {
			t.Errorf("new connection: %v", err)
		}
	}
	return int(failed.Load()), int(cur.accepted.Load() - before)
}

// front is a bare quic-go echo server on a reuseport socket.
type front struct {
	udp      *net.UDPConn
	accepted atomic.Int64
}

func startFront(t *testing.T, addr string, b byte, steer bool, conf *tls.Config) *front {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var udp *net.UDPConn
	var err error
	if steer {
		udp, err = ListenUDP(ctx, addr, b)
	} else {
		var pc net.PacketConn
		pc, err = ListenConfig().ListenPacket(ctx, "udp", addr)
		if err == nil {
			udp = pc.(*net.UDPConn)
		}
	}
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	f := &front{udp: udp}
	tr := &quicgo.Transport{Conn: udp, ConnectionIDGenerator: CIDGenerator{Byte: b}}
	ln, err := tr.Listen(conf, &quicgo.Config{MaxIdleTimeout: 5 * time.Second})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			qc, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			f.accepted.Add(1)
			wg.Go(func() { echo(ctx, qc) })
		}
	})
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
		tr.Close()
		udp.Close()
	})
	return f
}

// echo echoes every stream of qc until qc or ctx ends.
func echo(ctx context.Context, qc *quicgo.Conn) {
	defer qc.CloseWithError(0, "")
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := qc.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Go(func() {
			io.Copy(st, st)
			st.Close()
		})
	}
}

// echoClient is a QUIC connection from a socket of its own, with one stream.
type echoClient struct {
	st *quicgo.Stream
	n  int
}

func dialEcho(t *testing.T, addr string) *echoClient {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	raddr, _ := net.ResolveUDPAddr("udp", addr)
	tr := &quicgo.Transport{Conn: udp}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	qc, err := tr.Dial(ctx, raddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"test"}},
		&quicgo.Config{MaxIdleTimeout: 5 * time.Second})
	if err != nil {
		tr.Close()
		udp.Close()
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() {
		qc.CloseWithError(0, "")
		tr.Close()
		udp.Close()
	})
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &echoClient{st: st}
}

// roundTrip writes 8 bytes and reads them back within d.
func (c *echoClient) roundTrip(d time.Duration) error {
	c.n++
	msg := fmt.Appendf(nil, "%08d", c.n)
	c.st.SetDeadline(time.Now().Add(d))
	if _, err := c.st.Write(msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c.st, got); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo differs")
	}
	return nil
}
