// Command dtcall is a client for people: it logs in to a dtcall server,
// looks users up, calls and answers, playing a file as the voice it sends
// and recording the voice it receives. It speaks QUIC (the default;
// --datagram for media in QUIC datagrams) or the legacy TLS pair
// (--transport tcp), through package client.
//
//	dtcall --server HOST (--pin PIN | --ca FILE|system) [--user NAME] COMMAND
//
//	login              log in and stay online, printing events (Ctrl-C quits)
//	lookup NAME        tell whether account NAME exists
//	call NAME          call NAME and hold the call until either side hangs up
//	answer             wait for a call, accept it and hold it
//
// call and answer take --play FILE (sent as media: 32-byte frames, 50 per
// second; the call is hung up when the file ends) and --record FILE (what
// arrives is written to it). Ctrl-C hangs up. A call rings for --ring
// (20 s) before dtcall gives up; answer waits for --wait (default: until
// Ctrl-C).
//
// dtcall checks the server's certificate in one of two ways. --pin pins
// it: the server's certificate file (PEM) or its fingerprint
// "sha256:HEX" pin the whole certificate; "spki:HEX" or "sha256/BASE64"
// (HPKP's and curl's form) pin its public key, so a certificate renewed
// with the same key still matches. dtoperator logs all three at every
// start (fingerprint=, spki=, spki_base64=). --ca FILE verifies the
// certificate like any TLS client, against the CA certificates in FILE
// (PEM) and the server's name (--server, or --server-name NAME); --ca
// system uses the system's root CAs. --pin and --ca exclude each other.
//
// The password comes from
// DTCALL_PASSWORD or is asked without echo; there is no password flag.
// The user name comes from --user, DTCALL_USER, or is asked.
//
// Exit codes: 0 the command did its job (the call was held and ended by
// either side, the user exists); 1 network, certificate or protocol
// failure, or the connection was lost; 2 bad command line, no password;
// 3 login refused; 4 no call: busy, not available, rejected, not
// answered, the caller gave up, or no such user; 5 the call dropped (the
// other side lost its connection); 130 Ctrl-C before a call was up.
//
// # Two terminals
//
// Start the server with its demo accounts (it logs the certificate path
// and fingerprint):
//
//	go run ./cmd/dtoperator
//
// In a second terminal, zapper waits for a call and records it:
//
//	DTCALL_PASSWORD=railgun go run ./cmd/dtcall --server localhost \
//	    --pin ~/.local/share/dtoperator/cert.pem --user zapper answer --record heard.amr
//
// In a third, righthand calls zapper and plays a file (any file will do;
// the server does not look inside):
//
//	DTCALL_PASSWORD=unlucky go run ./cmd/dtcall --server localhost \
//	    --pin ~/.local/share/dtoperator/cert.pem --user righthand call zapper --play voice.amr
//
// The call ends when the file has been played (or on Ctrl-C in either
// terminal); heard.amr then holds exactly voice.amr (over QUIC datagrams, unless the network lost some). Add --transport tcp
// to either side to use the legacy protocol, or --datagram for QUIC
// datagrams; every pairing can call every other. Leave DTCALL_PASSWORD
// out to be asked for the password.
package main
