package tcp

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

func TestAdmission(t *testing.T) {
	a := newAdmission(2, 3)
	ip := netip.MustParseAddr
	t1, _ := a.admit(context.Background(), ip("2001:db8::1"))
	t2, _ := a.admit(context.Background(), ip("2001:db8::ffff:2")) // same /64
	if t1 == nil || t2 == nil {
		t.Fatal("first two from one /64 refused")
	}
	if t3, _ := a.admit(context.Background(), ip("2001:db8::3")); t3 != nil {
		t.Fatal("third from one /64 admitted over the per-source cap of 2")
	}
	t4, ev := a.admit(context.Background(), ip("::ffff:192.0.2.1")) // mapped: counts as 192.0.2.1
	if t4 == nil || ev {
		t.Fatalf("admit = %v, evicted %v", t4, ev)
	}
	if n := a.count(); n != 3 {
		t.Fatalf("count %d, want 3", n)
	}
	// At the total cap: a new source is admitted and the oldest (t1) cut.
	t5, ev := a.admit(context.Background(), ip("192.0.2.2"))
	if t5 == nil || !ev || !errors.Is(context.Cause(t1.ctx), errEvicted) || t2.ctx.Err() != nil {
		t.Fatalf("at the total cap: admitted %v, evicted %v, oldest's cause %v", t5 != nil, ev, context.Cause(t1.ctx))
	}
	a.release(t1) // after eviction: counted once only
	if n := a.count(); n != 3 {
		t.Fatalf("count %d after releasing the evicted ticket, want 3", n)
	}
	// t1's source now has one slot again.
	if t6, _ := a.admit(context.Background(), ip("2001:db8::4")); t6 == nil {
		t.Fatal("source refused after one of its tickets was cut")
	} else {
		a.release(t6)
	}
	for _, tk := range []*ticket{t2, t4, t5} {
		a.release(tk)
	}
	if n, m := a.count(), len(a.bySource); n != 0 || m != 0 || a.head != nil || a.tail != nil {
		t.Fatalf("after releasing all: count %d, %d sources, head %v tail %v", n, m, a.head, a.tail)
	}
}
