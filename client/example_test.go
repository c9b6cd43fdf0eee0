package client_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log"

	"github.com/dtcall/dtcall/client"
)

// The examples run against an in-process server on 127.0.0.1 (started by
// exampleServer) with the test accounts alice, bob, carol and dave, whose
// passwords are "pw-" and the name. Against a real server, use its host
// name, the default ports, and the fingerprint dtoperator logs at start.

// Alice, on QUIC, calls Bob, on the legacy TCP pair; Bob answers, Alice
// speaks, and hangs up.
func Example() {
	srv, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	alice, err := client.Dial(ctx, client.Options{
		Server:    "127.0.0.1",
		QUICPort:  srv.quicPort,
		Transport: client.QUIC,
		PinFile:   srv.certFile, // the server's certificate, PEM
	})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	if err := alice.Login(ctx, "alice", "pw-alice"); err != nil {
		log.Fatal(err)
	}
	if err := alice.RegisterMedia(ctx); err != nil { // needed to call and be called
		log.Fatal(err)
	}

	bob, err := client.Dial(ctx, client.Options{
		Server:      "127.0.0.1",
		CommandPort: srv.commandPort,
		MediaPort:   srv.mediaPort,
		Transport:   client.TCP,
		PinFile:     srv.certFile,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()
	if err := bob.Login(ctx, "bob", "pw-bob"); err != nil {
		log.Fatal(err)
	}
	if err := bob.RegisterMedia(ctx); err != nil {
		log.Fatal(err)
	}

	res, err := alice.Call(ctx, "bob")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("alice calls bob:", res)
	ev := <-bob.Events()
	fmt.Println("bob:", ev)
	if err := bob.Accept(ctx, ev.Peer); err != nil {
		log.Fatal(err)
	}
	fmt.Println("alice:", <-alice.Events())
	fmt.Println("bob:", <-bob.Events())

	if err := alice.Media().WriteMedia([]byte("hello, bob")); err != nil {
		log.Fatal(err)
	}
	heard, err := bob.Media().ReadMedia(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bob hears %q\n", heard)

	if err := alice.End(ctx, "bob"); err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob:", <-bob.Events())
	// Output:
	// alice calls bob: available
	// bob: incoming alice
	// alice: start bob
	// bob: start alice
	// bob hears "hello, bob"
	// bob: end alice
}

// Pin the server by the fingerprint dtoperator logs at start. A server
// whose certificate does not match is refused with a *PinError.
func ExampleDial_pinSHA256() {
	srv, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	sum := sha256.Sum256(srv.der)
	fingerprint := "sha256:" + hex.EncodeToString(sum[:]) // as logged: "fingerprint=sha256:07db31b8…"

	o := client.Options{
		Server:      "127.0.0.1",
		CommandPort: srv.commandPort,
		MediaPort:   srv.mediaPort,
		PinSHA256:   fingerprint,
	}
	c, err := client.Dial(ctx, o)
	if err != nil {
		log.Fatal(err)
	}
	c.Close()
	fmt.Println("pinned connection: ok")

	o.PinSHA256 = "sha256:" + hex.EncodeToString(make([]byte, 32))
	_, err = client.Dial(ctx, o)
	var pe *client.PinError
	fmt.Println("wrong pin refused:", errors.As(err, &pe))
	// Output:
	// pinned connection: ok
	// wrong pin refused: true
}

// Pin the server's public key, as dtoperator logs it at start
// ("spki=spki:…", or "spki_base64=sha256/…" in the HPKP and curl form). A
// renewed certificate with the same key still matches.
func ExampleDial_pinPublicKey() {
	srv, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	leaf, err := x509.ParseCertificate(srv.der)
	if err != nil {
		log.Fatal(err)
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)

	for _, fingerprint := range []string{
		"spki:" + hex.EncodeToString(sum[:]),
		"sha256/" + base64.StdEncoding.EncodeToString(sum[:]),
	} {
		c, err := client.Dial(ctx, client.Options{
			Server:    "127.0.0.1",
			QUICPort:  srv.quicPort,
			Transport: client.QUIC,
			PinSHA256: fingerprint,
		})
		if err != nil {
			log.Fatal(err)
		}
		c.Close()
		fmt.Println("pinned by public key: ok")
	}
	// Output:
	// pinned by public key: ok
	// pinned by public key: ok
}

// Login failures and call outcomes are typed.
func ExampleClient_Call() {
	srv, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Options{Server: "127.0.0.1", QUICPort: srv.quicPort, Transport: client.QUIC, PinFile: srv.certFile})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	err = c.Login(ctx, "alice", "wrong")
	fmt.Println(errors.Is(err, client.ErrRefused), err)
	if err := c.Login(ctx, "alice", "pw-alice"); err != nil {
		log.Fatal(err)
	}
	if err := c.RegisterMedia(ctx); err != nil {
		log.Fatal(err)
	}
	exists, err := c.Lookup(ctx, "carol")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("carol exists:", exists)

	switch res, err := c.Call(ctx, "carol"); {
	case err != nil:
		log.Fatal(err)
	case res == client.NotAvailable:
		fmt.Println("carol is not available (offline or unknown)")
	case res == client.Busy:
		fmt.Println("carol is busy")
	case res == client.Available:
		fmt.Println("ringing carol")
	}
	// Output:
	// true login refused: wrong user name or password, or a stale clock
	// carol exists: true
	// carol is not available (offline or unknown)
}

// In datagram mode every WriteMedia is one QUIC datagram and every
// ReadMedia returns one. Lost datagrams are not resent.
func ExampleMedia_datagram() {
	srv, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	online := func(user string) *client.Client {
		c, err := client.Dial(ctx, client.Options{
			Server: "127.0.0.1", QUICPort: srv.quicPort, PinFile: srv.certFile,
			Transport: client.QUICDatagram,
		})
		if err != nil {
			log.Fatal(err)
		}
		if err := c.Login(ctx, user, "pw-"+user); err != nil {
			log.Fatal(err)
		}
		if err := c.RegisterMedia(ctx); err != nil {
			log.Fatal(err)
		}
		return c
	}
	alice, dave := online("alice"), online("dave")
	defer alice.Close()
	defer dave.Close()
	if _, err := alice.Call(ctx, "dave"); err != nil {
		log.Fatal(err)
	}
	<-dave.Events() // incoming alice
	if err := dave.Accept(ctx, "alice"); err != nil {
		log.Fatal(err)
	}
	<-alice.Events() // start dave

	m := alice.Media()
	fmt.Println("datagram mode:", m.Datagram(), "room for a 32-byte frame:", m.MaxDatagram() >= 32)
	for i := range 3 {
		frame := fmt.Appendf(nil, "frame %d", i)
		if err := m.WriteMedia(frame); err != nil {
			log.Fatal(err)
		}
	}
	for range 3 {
		p, err := dave.Media().ReadMedia(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", p)
	}
	// Output:
	// datagram mode: true room for a 32-byte frame: true
	// frame 0
	// frame 1
	// frame 2
}

// Answer calls from the event loop, until the call ends.
func ExampleClient_Events() {
	srv, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	online := func(user string) *client.Client {
		c, err := client.Dial(ctx, client.Options{
			Server: "127.0.0.1", CommandPort: srv.commandPort, MediaPort: srv.mediaPort, PinFile: srv.certFile,
		})
		if err != nil {
			log.Fatal(err)
		}
		if err := c.Login(ctx, user, "pw-"+user); err != nil {
			log.Fatal(err)
		}
		if err := c.RegisterMedia(ctx); err != nil {
			log.Fatal(err)
		}
		return c
	}
	bob, carol := online("bob"), online("carol")
	defer bob.Close()
	defer carol.Close()
	if _, err := carol.Call(ctx, "bob"); err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // carol hangs up once the call is up
		defer close(done)
		<-carol.Events()
		carol.End(ctx, "bob")
	}()
	defer func() { <-done }()

	for ev := range bob.Events() { // closed if the connection ends
		switch ev.Kind {
		case client.Incoming:
			fmt.Println("answering", ev.Peer)
			if err := bob.Accept(ctx, ev.Peer); err != nil {
				fmt.Println(err) // the caller gave up meanwhile
			}
		case client.Started:
			fmt.Println("talking to", ev.Peer)
		case client.Ended:
			fmt.Println(ev.Peer, "hung up")
			// Clients register fresh media after each call.
			if err := bob.RegisterMedia(ctx); err != nil {
				log.Fatal(err)
			}
			return
		case client.Dropped:
			fmt.Println("the call dropped")
			return
		}
	}
	// Output:
	// answering carol
	// talking to carol
	// carol hung up
}
