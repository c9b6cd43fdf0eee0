package quic

import (
	"net/netip"
	"testing"
)

func TestSourceOf(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"192.0.2.1", "192.0.2.1", true},
		{"192.0.2.1", "192.0.2.2", false},
		{"::ffff:192.0.2.1", "192.0.2.1", true},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true}, // one /64
		{"2001:db8:1:2::1", "2001:db8:1:3::1", false},
	} {
		if got := sourceOf(netip.MustParseAddr(tc.a)) == sourceOf(netip.MustParseAddr(tc.b)); got != tc.same {
			t.Errorf("%s and %s: same source %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}

// TestAdmission: per-source and total limits; put frees the source's entry
// and asks for a reclaim once reclaimAfter connections closed and at most
// half of the peak is left.
func TestAdmission(t *testing.T) {
	ad := newAdmission(2, 3)
	a, b := sourceOf(netip.MustParseAddr("192.0.2.1")), sourceOf(netip.MustParseAddr("192.0.2.2"))
	for i, want := range []error{nil, nil, errSourceLimit} {
		if err := ad.take(a); err != want {
			t.Fatalf("take %d from a: %v, want %v", i, err, want)
		}
	}
	if err := ad.take(b); err != nil {
		t.Fatal(err)
	}
	if err := ad.take(b); err != errGlobalLimit {
		t.Fatalf("fourth: %v", err)
	}
	ad.put(a)
	ad.put(a)
	if _, ok := ad.bySrc[a]; ok || ad.count() != 1 {
		t.Fatalf("after puts: %v live, map %v", ad.count(), ad.bySrc)
	}
	ad.put(b)

	big := newAdmission(1<<20, 1<<20)
	const n = 2 * reclaimAfter
	for range n {
		big.take(a)
	}
	reclaims := 0
	for i := range n {
		if big.put(a) {
			reclaims++
			if left := n - i - 1; left > n/2 {
				t.Errorf("reclaim with %d of %d left", left, n)
			}
		}
	}
	if reclaims != 2 { // half of them closed, then the rest
		t.Errorf("%d reclaims for %d closes, want 2", reclaims, n)
	}
}
