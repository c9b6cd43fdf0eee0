package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/dtcall/dtcall/client"
)

// TestForwarderPairsQUICByName: the QUIC forwarder pairs the parties of a
// call by the name they send, whatever order they arrive in. Calls 1 and
// 2 dial 1, 2, 2, 1: in arrival order call 1's caller would get call 2's
// caller as its partner.
func TestForwarderPairsQUICByName(t *testing.T) {
	f, cert := startBaseline(t)
	p, err := parsePin(cert)
	if err == nil {
		err = p.load()
	}
	if err != nil {
		t.Fatal(err)
	}
	d := &baseDialer{host: "127.0.0.1", quicPort: f.quicLn.Addr().(*net.UDPAddr).Port, pin: p, run: newRunName()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ends []mediaEnd
	for _, call := range []int{1, 2, 2, 1} {
		e, err := d.dial(ctx, client.QUICDatagram, call)
		if err != nil {
			t.Fatal(err)
		}
		defer e.(*datagramEnd).Close()
		ends = append(ends, e)
	}
	for _, pair := range [][2]int{{0, 3}, {1, 2}, {3, 0}} {
		from, to := ends[pair[0]], ends[pair[1]]
		msg := []byte{byte(pair[0]), byte(pair[1])}
		// Datagrams may be lost: send until one arrives, at most 50 times.
		var got []byte
		for try := 0; try < 50 && got == nil; try++ {
			if err := from.write(msg); err != nil {
				t.Fatal(err)
			}
			rctx, rcancel := context.WithTimeout(ctx, 100*time.Millisecond)
			got, _ = to.read(rctx)
			rcancel()
		}
		if string(got) != string(msg) {
			t.Fatalf("connection %d sent %v, connection %d got %v: want it from its own call's party", pair[0], msg, pair[1], got)
		}
	}
}
