package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dtcall/dtcall/accounts"
	"github.com/dtcall/dtcall/accounts/autoban"
	"github.com/dtcall/dtcall/client"
	"github.com/dtcall/dtcall/cluster/natstest"
	"github.com/dtcall/dtcall/internal/memtrim"
	"github.com/dtcall/dtcall/internal/testcert"
	"github.com/dtcall/dtcall/internal/testserver"
)

// clusterSeries are the dtcall_cluster_* families and the label values of
// each series (README.md's metrics table).
var clusterSeries = map[string][]string{
	"dtcall_cluster_calls_active":          {""},
	"dtcall_cluster_media_frames_total":    {"direction=in", "direction=out"},
	"dtcall_cluster_media_bytes_total":     {"direction=in", "direction=out"},
	"dtcall_cluster_media_dropped_total":   {"reason=lost_node", "reason=no_connection", "reason=slow_consumer"},
	"dtcall_cluster_signals_total":         {"direction=in", "direction=out"},
	"dtcall_cluster_signals_dropped_total": {"reason=lost_node", "reason=no_connection"},
	"dtcall_cluster_nats_connected":        {""},
	"dtcall_cluster_nats_reconnects_total": {""},
	"dtcall_cluster_presence_entries":      {"scope=all", "scope=local"},
	"dtcall_cluster_nodes_alive":           {""},
	"dtcall_cluster_nodes_lost_total":      {""},
}

// TestClusterMetrics: two nodes on a real nats-server; alice on node a
// calls bob on node b and they talk. Node a's /metrics, scraped over HTTP,
// has every cluster family with the call, its frames and signals, both
// presence entries and the other node; a single node's has none.
func TestClusterMetrics(t *testing.T) {
	t.Parallel()
	ns := natstest.StartServer(t)
	cert := testcert.Write(t)
	a := testserver.Start(t, testserver.Config{Cert: cert, NATS: ns.URL(), Name: "a"})
	b := testserver.Start(t, testserver.Config{Cert: cert, NATS: ns.URL(), Name: "b"})
	single := testserver.Start(t, testserver.Config{Cert: cert})
	addrA := serveMetrics(t, a)
	addrSingle := serveMetrics(t, single)

	alice := onlineAt(t, a, "alice", client.QUICDatagram)
	bob := onlineAt(t, b, "bob", client.TCP)
	deadline := time.Now().Add(10 * time.Second)
	for a.Node.Stats().NodesAlive != 1 || a.Node.Stats().EntriesTotal != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("node a: %+v", a.Node.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if res, err := alice.Call(ctx, "bob"); err != nil || res != client.Available {
		t.Fatalf("alice calls bob: %v, %v", res, err)
	}
	waitFor(t, bob, client.Incoming)
	if err := bob.Accept(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, alice, client.Started)
	waitFor(t, bob, client.Started)
	frame := []byte(strings.Repeat("m", 32))
	for range 5 {
		if err := alice.Media().WriteMedia(frame); err != nil {
			t.Fatal(err)
		}
		if err := bob.Media().WriteMedia(frame); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*client.Client{alice, bob} { // the frames crossed the nodes
		got := 0
		for got < 5*len(frame) {
			p, err := c.Media().ReadMedia(ctx)
			if err != nil {
				t.Fatalf("%s: read media: %v", c.User(), err)
			}
			got += len(p)
		}
	}

	m := scrapeText(t, addrA)
	for name, want := range clusterSeries {
		f := m[name]
		if f == nil {
			t.Errorf("no family %s", name)
			continue
		}
		var got []string
		for _, s := range f.GetMetric() {
			var l []string
			for _, lp := range s.GetLabel() {
				l = append(l, lp.GetName()+"="+lp.GetValue())
			}
			got = append(got, strings.Join(l, ","))
		}
		if strings.Join(sortedCopy(got), " ") != strings.Join(want, " ") {
			t.Errorf("%s has the series %q, want %q", name, got, want)
		}
	}
	for _, c := range []struct {
		name, label string
		min, max    float64
	}{
		{"dtcall_cluster_calls_active", "", 1, 1},
		{"dtcall_cluster_media_frames_total", "out", 5, 1e9},
		{"dtcall_cluster_media_frames_total", "in", 5, 1e9},
		{"dtcall_cluster_media_bytes_total", "out", 5 * 32, 1e9},
		{"dtcall_cluster_media_bytes_total", "in", 5 * 32, 1e9},
		{"dtcall_cluster_signals_total", "out", 1, 1e9}, // the ring
		{"dtcall_cluster_signals_total", "in", 2, 1e9},  // its result, call|start
		{"dtcall_cluster_nats_connected", "", 1, 1},
		{"dtcall_cluster_presence_entries", "local", 1, 1},
		{"dtcall_cluster_presence_entries", "all", 2, 2},
		{"dtcall_cluster_nodes_alive", "", 1, 1},
		{"dtcall_cluster_nodes_lost_total", "", 0, 0},
		{"dtcall_cluster_nats_reconnects_total", "", 0, 0},
	} {
		if v := seriesValue(m, c.name, c.label); v < c.min || v > c.max {
			t.Errorf("%s{%s} = %v, want %v..%v", c.name, c.label, v, c.min, c.max)
		}
	}
	for name := range scrapeText(t, addrSingle) {
		if strings.HasPrefix(name, "dtcall_cluster_") {
			t.Errorf("a single node exports %s", name)
		}
	}
}

// serveMetrics serves the metrics of ts on a loopback port until the end
// of t, as serve does, and returns the address.
func serveMetrics(t *testing.T, ts *testserver.Server) string {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	m := &metricsCollector{core: ts.Core, legacy: ts.Legacy, modern: ts.QUIC, store: accounts.NewStore(nil, 0),
		bans: autoban.New(autoban.Config{}, log), reloads: &reloadCounts{}, node: ts.Node,
		trimmer: memtrim.New(memtrim.Config{}, log)}
	admin, err := startAdmin("127.0.0.1:0", newRegistry(m), func() (bool, string) { return true, "ready" }, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.close)
	return admin.addr()
}

func onlineAt(t *testing.T, ts *testserver.Server, user string, tr client.Transport) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{Server: "127.0.0.1", CommandPort: ts.CommandPort, MediaPort: ts.MediaPort,
		QUICPort: ts.QUICPort, Transport: tr, PinFile: ts.Cert.CertFile, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(ctx, user, "pw-"+user); err != nil {
		t.Fatal(err)
	}
	if err := c.RegisterMedia(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func waitFor(t *testing.T, c *client.Client, kind client.EventKind) {
	t.Helper()
	select {
	case ev := <-c.Events():
		if ev.Kind != kind {
			t.Fatalf("%s: got %v, want %v", c.User(), ev, kind)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no %v", c.User(), kind)
	}
}

// scrapeText gets /metrics over HTTP and parses the text format.
func scrapeText(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d, %v", resp.StatusCode, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics: %v\n%s", err, body)
	}
	return fams
}

// seriesValue is the value of the series of name whose one label (if any)
// has the value label; -1 if there is none.
func seriesValue(m map[string]*dto.MetricFamily, name, label string) float64 {
	for _, s := range m[name].GetMetric() {
		if len(s.GetLabel()) > 0 && s.GetLabel()[0].GetValue() != label {
			continue
		}
		if s.Counter != nil {
			return s.Counter.GetValue()
		}
		return s.Gauge.GetValue()
	}
	return -1
}

func sortedCopy(s []string) []string { return slices.Sorted(slices.Values(s)) }
