// Package reuseport opens the sockets of a server that shares its ports
// with another process of itself (SO_REUSEPORT), so that a new process can
// start on the same ports while the old one drains its calls, and steers
// each QUIC packet to the process that owns its connection.
//
// TCP needs no steering: an accepted connection belongs to the process
// that accepted it, and once the old process closes its listener the
// kernel sends every new connection to the new one. (Linux resets the
// connections still waiting in a closed listener's accept queue, unless
// net.ipv4.tcp_migrate_req is set; a client then reconnects.)
//
// UDP does: the kernel picks a socket of the group by a hash of the
// 4-tuple, modulo the number of sockets, so a second socket takes over
// about half of the first one's flows, and the old process's QUIC
// connections would break. Steer attaches a classic BPF program to the
// group that picks the socket by the packet's destination connection ID
// instead: each process issues connection IDs (CIDGenerator) that start
// with its own steering byte.
//
// Packet layout seen by the program (RFC 9000 section 17; the kernel
// runs it on the UDP payload, offset 0 is the QUIC packet's first byte):
//
//	short header: 0b0_1xxxxxx | DCID (8 bytes: our length) ...
//	long header:  0b1_1TTxxxx | version (4) | DCID len (1) | DCID ...
//	              TT: 00 Initial, 01 0-RTT, 10 Handshake, 11 Retry (v1)
package reuseport

import (
	"crypto/rand"

	quicgo "github.com/quic-go/quic-go"
)

// CIDLen is the length of the connection IDs CIDGenerator issues.
const CIDLen = 8

// Socket indexes in the reuseport group, as the kernel numbers them: the
// socket bound first is 0. The program returns one of them; an index the
// group does not have (a process alone) makes the kernel use its hash.
const (
	oldSocket = 0 // the process that was running when this one started
	newSocket = 1 // this process, which attached the program
)

// CIDGenerator issues random connection IDs of CIDLen bytes whose first
// byte is Byte. It is safe for concurrent use.
type CIDGenerator struct{ Byte byte }

// GenerateConnectionID returns Byte followed by 7 random bytes.
func (g CIDGenerator) GenerateConnectionID() (quicgo.ConnectionID, error) {
	var b [CIDLen]byte
	b[0] = g.Byte
	rand.Read(b[1:]) // never fails (crypto/rand)
	return quicgo.ConnectionIDFromBytes(b[:]), nil
}

// ConnectionIDLen returns CIDLen.
func (CIDGenerator) ConnectionIDLen() int { return CIDLen }

// NextByte returns the steering byte a new process takes when the running
// one has prev: the next value, skipping 0 (0 is what a missing file
// reads as).
func NextByte(prev byte) byte {
	if prev == 255 {
		return 1
	}
	return prev + 1
}
