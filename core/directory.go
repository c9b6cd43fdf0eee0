package core

import (
	"sync"

	"github.com/dtcall/dtcall/wire"
)

// Directory records who is online and where. The in-memory one serves a
// single node; a clustered one (several nodes sharing presence) replaces
// it without the fronts noticing. The core calls it with its lock held, so an
// implementation must answer from local state and never wait on a network.
type Directory interface {
	// Register records that user is online with session id on this node and
	// returns the session of this node it replaces, if any. (A session of
	// the user on another node is ended by that node: a clustered
	// directory tells it, and it calls Server.Superseded.)
	Register(user string, id wire.SessionID) (replaced wire.SessionID, ok bool)
	// Unregister forgets user if the record still names session id.
	Unregister(user string, id wire.SessionID)
	// Lookup returns where user is online.
	Lookup(user string) (Location, bool)
}

// MemoryDirectory is the single-node Directory. It is safe for concurrent use.
type MemoryDirectory struct {
	mu     sync.Mutex
	online map[string]wire.SessionID
}

// NewMemoryDirectory returns an empty in-memory directory.
func NewMemoryDirectory() *MemoryDirectory {
	return &MemoryDirectory{online: make(map[string]wire.SessionID)}
}

func (d *MemoryDirectory) Register(user string, id wire.SessionID) (wire.SessionID, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old, ok := d.online[user]
	d.online[user] = id
	return old, ok
}

func (d *MemoryDirectory) Unregister(user string, id wire.SessionID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.online[user] == id {
		delete(d.online, user)
	}
}

func (d *MemoryDirectory) Lookup(user string) (Location, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.online[user]
	return Location{Session: id}, ok
}
