package accounts

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// Decoys: a login for an unknown name is checked against a decoy hash, so
// that it costs what a wrong password for a real account costs. A single
// decoy with the file's most common parameters is not enough: in a file
// that mixes the old tool's p=16 hashes (0.8 s) with new ones (0.1 s),
// timing would tell every unknown name from the accounts of the other
// kind. So each distinct hash shape (parameters and salt length) of the
// file has a decoy, and a keyed hash of the name picks which one checks
// it, weighted by how many accounts have that shape: a name always costs
// the same (asking again tells nothing), and the costs of unknown names
// are distributed like those of the file's accounts. The key is random per
// Store (per process), so nobody outside can tell which names are slow.

// decoySet holds the decoys of one generation of accounts.
type decoySet struct {
	decoys []Hash // one per shape, in the order the file first uses it
	upTo   []int  // upTo[i]: accounts with the shapes of decoys[:i+1]
}

// shape is what the cost of checking a hash depends on.
type shape struct {
	Params
	saltLen int
}

// newDecoySet returns the decoys for entries: one per shape, counted; for
// no entries, one with DefaultParams. No password matches a decoy: its key
// is random.
func newDecoySet(entries []Entry) decoySet {
	var d decoySet
	index := make(map[shape]int)
	counts := []int{}
	for _, e := range entries {
		sh := shape{e.Hash.Params, len(e.Hash.Salt)}
		i, ok := index[sh]
		if !ok {
			i = len(d.decoys)
			index[sh] = i
			d.decoys = append(d.decoys, randomHash(sh))
			counts = append(counts, 0)
		}
		counts[i]++
	}
	if len(d.decoys) == 0 {
		d.decoys = []Hash{randomHash(shape{DefaultParams, saltLen})}
		counts = []int{1}
	}
	sum := 0
	for _, n := range counts {
		sum += n
		d.upTo = append(d.upTo, sum)
	}
	return d
}

// randomHash returns a hash of shape sh with a random salt and key.
func randomHash(sh shape) Hash {
	h := Hash{Params: sh.Params, Salt: make([]byte, max(sh.saltLen, 1)), Key: make([]byte, keyLen)}
	rand.Read(h.Salt) // never fails; see crypto/rand.Read
	rand.Read(h.Key)
	return h
}

// pick returns the decoy that checks name under key: HMAC-SHA256(key,
// name) chooses one of the accounts (uniformly, up to a bias of
// accounts/2^64) and the decoy of its shape is used.
func (d decoySet) pick(key []byte, name string) Hash {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(name))
	x := binary.BigEndian.Uint64(mac.Sum(nil))
	n := uint64(d.upTo[len(d.upTo)-1])
	i, _ := slices.BinarySearch(d.upTo, int(x%n)+1)
	return d.decoys[i]
}

// newDecoyKey returns a random key for pick.
func newDecoyKey() []byte {
	k := make([]byte, 32)
	rand.Read(k) // never fails
	return k
}
