package memtrim

import (
	"context"
	"io"
	"log/slog"
	"runtime/metrics"
	"testing"
	"time"
)

var testCfg = Config{Interval: time.Second, Burst: 100, QuietRate: 10, QuietFor: 2 * time.Second}

// steps feeds w one observation per second, each adding the given bytes,
// and returns on which seconds it asked for a trim (trimming as Run does).
func steps(w *watch, start time.Time, adds ...uint64) []int {
	var trims []int
	total := w.last
	for i, add := range adds {
		total += add
		now := start.Add(time.Duration(i+1) * time.Second)
		if w.observe(total, now) {
			trims = append(trims, i+1)
			w.trimmed(total, now)
		}
	}
	return trims
}

func TestWatchTrimsOnceAfterABurstGoesQuiet(t *testing.T) {
	start := time.Unix(1000, 0)
	cases := []struct {
		name string
		adds []uint64
		want []int
	}{
		{"quiet from the start: nothing to give back", []uint64{0, 0, 0, 0, 0}, nil},
		{"busy all along: never quiet", []uint64{60, 60, 60, 60, 60, 60}, nil},
		// second 2 is the first quiet one; the trim comes QuietFor later.
		{"a burst, then quiet", []uint64{120, 0, 0, 0, 0, 0, 0}, []int{4}},
		{"a burst, quiet, a trickle under the rate", []uint64{120, 5, 5, 5, 5, 5}, []int{4}},
		{"quiet broken before QuietFor", []uint64{120, 0, 50, 0, 0, 0}, []int{6}},
		{"two bursts, two trims", []uint64{120, 0, 0, 0, 150, 0, 0, 0}, []int{4, 8}},
		{"a small burst is not worth a collection", []uint64{40, 0, 0, 0, 0}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := &watch{cfg: testCfg, lastAt: start}
			got := steps(w, start, c.adds...)
			if len(got) != len(c.want) {
				t.Fatalf("trims at seconds %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("trims at seconds %v, want %v", got, c.want)
				}
			}
		})
	}
}

var sink [][]byte

func read(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestTrimmerReturnsABurstsMemory runs a real Trimmer on this process: 48
// MiB allocated and dropped are given back to the system once allocation
// stops, and not while it goes on.
func TestTrimmerReturnsABurstsMemory(t *testing.T) {
	tr := New(Config{Interval: 20 * time.Millisecond, Burst: 16 << 20, QuietRate: 64 << 20,
		QuietFor: 100 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// Busy: allocate 128 MiB/s for 400 ms, well over QuietRate.
	for end := time.Now().Add(400 * time.Millisecond); time.Now().Before(end); {
		sink = append(sink, make([]byte, 1<<20))
		if len(sink) > 48 {
			sink = sink[1:]
		}
		time.Sleep(8 * time.Millisecond)
	}
	if n := tr.Trims(); n != 0 {
		t.Fatalf("%d trims while allocating at 128 MiB/s", n)
	}
	released := read("/memory/classes/heap/released:bytes")
	sink = nil // 48 MiB of garbage, which no collection has seen yet

	deadline := time.Now().Add(5 * time.Second)
	for tr.Trims() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if tr.Trims() != 1 {
		t.Fatalf("%d trims 5 s after allocation stopped, want 1", tr.Trims())
	}
	if got := read("/memory/classes/heap/released:bytes"); got < released+32<<20 {
		t.Fatalf("released %d MiB more after the trim, want at least 32 MiB of the 48 dropped",
			(int64(got)-int64(released))>>20)
	}
	time.Sleep(300 * time.Millisecond)
	if n := tr.Trims(); n != 1 {
		t.Fatalf("%d trims without a new burst, want 1", n)
	}
}
