package main

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/dtcall/dtcall/accounts"
	"github.com/dtcall/dtcall/accounts/autoban"
	"github.com/dtcall/dtcall/cluster"
	"github.com/dtcall/dtcall/core"
	"github.com/dtcall/dtcall/internal/memtrim"
	"github.com/dtcall/dtcall/transport/quic"
	"github.com/dtcall/dtcall/transport/tcp"
)

// Metrics are read from the counters the core, the fronts and the accounts
// keep anyway (atomics), when Prometheus scrapes: the per-frame path gains
// nothing. README.md's "Metrics" section documents every family.

// metricsCollector is a prometheus.Collector over the server's counters.
type metricsCollector struct {
	core    *core.Server
	legacy  *tcp.Server
	modern  *quic.Server
	store   *accounts.Store
	bans    *autoban.Bans
	reloads *reloadCounts
	node    *cluster.Node // nil on a single node: no dtcall_cluster_* families
	trimmer *memtrim.Trimmer
}

// reloadCounts counts SIGHUP reloads by outcome.
type reloadCounts struct{ ok, failed atomic.Int64 }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descSessions      = desc("dtcall_sessions", "Logged-in sessions, by front.", "front")
	descCallsActive   = desc("dtcall_calls_active", "Answered calls in progress.")
	descCalls         = desc("dtcall_calls_total", "Call attempts, by how they were settled.", "result")
	descCallsEnded    = desc("dtcall_calls_ended_total", "Answered calls that ended, by reason.", "reason")
	descLogins        = desc("dtcall_logins_total", "Login commands, by result.", "result")
	descLoginCheck    = desc("dtcall_login_check_seconds", "Time of each password check (scrypt), including the wait for a check slot.")
	descLoginsWaiting = desc("dtcall_login_checks_waiting", "Logins waiting for a password check slot.")
	descWorkerChecks  = desc("dtcall_login_checks_worker_total", "Costly password checks sent to the check worker while calls were in progress: done there, or failed or starved there and done in the server.", "result")
	descMediaBytes    = desc("dtcall_media_bytes_total", "Media bytes relayed: in from senders, out to receivers.", "direction")
	descMediaDropped  = desc("dtcall_media_dropped_total", "Media chunks dropped, by reason.", "reason")
	descHandshakes    = desc("dtcall_handshakes_total", "TLS and QUIC handshakes, by front, engine and result.", "front", "engine", "result")
	descReloads       = desc("dtcall_reloads_total", "Configuration reloads (SIGHUP), by result.", "result")
	descDraining      = desc("dtcall_draining", "1 while the server drains (lame-duck mode) before it stops.")
	descSlowConsumers = desc("dtcall_slow_consumers_total", "Clients disconnected because they did not read their replies.")
	descUnresponsive  = desc("dtcall_unresponsive_total", "QUIC clients disconnected because nothing came from them for 1.5 s during a call.")
	descWriteFailures = desc("dtcall_write_failures_total", "Reply and media writes that failed or timed out.")
	descQueueDelay    = desc("dtcall_media_queue_delay_max_seconds", "Longest time a media chunk waited in a receiver's queue since start.")
	descRateLimited   = desc("dtcall_commands_rate_limited_total", "Commands refused by the per-session rate limit.")
	descFlooders      = desc("dtcall_flood_disconnects_total", "Connections closed for a sustained command flood.")
	descCrowded       = desc("dtcall_calls_crowded_total", "Calls answered busy because the callee's reply queue was over half full.")
	descMemoryTrims   = desc("dtcall_memory_trims_total", "Collections run to give a burst's memory back to the system once the server went quiet.")
	descRefused       = desc("dtcall_connections_refused_total", "Connections refused or cut before their handshake, by front and reason.", "front", "reason")
	descSlotTimeouts  = desc("dtcall_quic_accept_waits_expired_total", "QUIC handshakes that waited 5 s for the accept loop and went on without a slot (quic-go may refuse them).")
	descHandshaking   = desc("dtcall_handshakes_in_progress", "Connections accepted whose handshake has not finished, by front.", "front")
	descAutobanActive = desc("dtcall_autoban_active", "Sources banned now for failed logins.")
	descAutobanBans   = desc("dtcall_autoban_bans_total", "Bans imposed for failed logins since start.")
)

// The cluster families, exported only when the server is a node of a
// cluster (setting "nats"), from cluster.Node.Stats and core RemoteCalls.
var (
	descClusterCalls       = desc("dtcall_cluster_calls_active", "Answered calls in progress with a party on another node.")
	descClusterFrames      = desc("dtcall_cluster_media_frames_total", "Media frames between this node and the others: in from them, out to them.", "direction")
	descClusterBytes       = desc("dtcall_cluster_media_bytes_total", "Media bytes between this node and the others, by direction.", "direction")
	descClusterMediaDrops  = desc("dtcall_cluster_media_dropped_total", "Media frames to or from other nodes dropped, by reason.", "reason")
	descClusterSignals     = desc("dtcall_cluster_signals_total", "Call signals between this node and the others, by direction.", "direction")
	descClusterSignalDrops = desc("dtcall_cluster_signals_dropped_total", "Call signals to other nodes not sent, by reason.", "reason")
	descClusterConnected   = desc("dtcall_cluster_nats_connected", "1 while the node is connected to NATS, else 0.")
	descClusterReconnects  = desc("dtcall_cluster_nats_reconnects_total", "Reconnections to NATS since start.")
	descClusterEntries     = desc("dtcall_cluster_presence_entries", "Presence entries: this node's sessions (local), and all nodes' as last watched (all).", "scope")
	descClusterAlive       = desc("dtcall_cluster_nodes_alive", "Other nodes heard from within the node timeout.")
	descClusterLost        = desc("dtcall_cluster_nodes_lost_total", "Times another node was declared lost (its calls with this node dropped).")
)

// clusterDescs are the cluster families, in the README's order.
var clusterDescs = []*prometheus.Desc{
	descClusterCalls, descClusterFrames, descClusterBytes, descClusterMediaDrops, descClusterSignals,
	descClusterSignalDrops, descClusterConnected, descClusterReconnects, descClusterEntries,
	descClusterAlive, descClusterLost,
}

// quicDatagramDrop is the drop reason of datagrams the QUIC front dropped
// on the way in, because the relay lagged behind.
const quicDatagramDrop = "quic_receive_queue"

func (m *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descSessions, descCallsActive, descCalls, descCallsEnded, descLogins, descLoginCheck,
		descLoginsWaiting, descWorkerChecks, descMediaBytes, descMediaDropped, descHandshakes, descReloads,
		descDraining, descSlowConsumers, descUnresponsive, descWriteFailures, descQueueDelay,
		descRateLimited, descFlooders, descCrowded, descRefused, descSlotTimeouts, descHandshaking,
		descAutobanActive, descAutobanBans, descMemoryTrims,
	} {
		ch <- d
	}
	if m.node != nil {
		for _, d := range clusterDescs {
			ch <- d
		}
	}
}

func (m *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	st := m.core.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, front := range []string{"tcp", "quic"} {
		gauge(descSessions, float64(st.FrontSessions[front]), front)
	}
	gauge(descCallsActive, float64(st.ActiveCalls))
	for r, n := range st.CallResults {
		counter(descCalls, n, r)
	}
	for r, n := range st.CallsEnded {
		counter(descCallsEnded, n, r)
	}
	for r, n := range st.Logins {
		counter(descLogins, n, r)
	}
	h := st.LoginCheck
	buckets := make(map[float64]uint64, len(h.Buckets))
	for i, b := range h.Buckets {
		buckets[b] = h.Counts[i]
	}
	ch <- prometheus.MustNewConstHistogram(descLoginCheck, h.Count, h.Sum, buckets)
	as := m.store.Stats()
	gauge(descLoginsWaiting, float64(as.Waiting))
	counter(descWorkerChecks, int64(as.InWorker), "worker")
	counter(descWorkerChecks, int64(as.Fallbacks), "fallback")
	counter(descMediaBytes, st.MediaBytesIn, "in")
	counter(descMediaBytes, st.MediaBytesOut, "out")
	qs := m.modern.Stats()
	for r, n := range st.Drops {
		counter(descMediaDropped, n, r)
	}
	counter(descMediaDropped, qs.DatagramsDropped, quicDatagramDrop)
	ls := m.legacy.Stats()
	for r, n := range ls.Refused {
		counter(descRefused, n, "tcp", r)
	}
	for r, n := range qs.Refused {
		counter(descRefused, n, "quic", r)
	}
	counter(descSlotTimeouts, qs.SlotTimeouts)
	gauge(descHandshaking, float64(ls.Handshaking), "tcp")
	for engine, results := range ls.Handshakes {
		for r, n := range results {
			counter(descHandshakes, n, "tcp", engine, r)
		}
	}
	for r, n := range qs.Handshakes {
		counter(descHandshakes, n, "quic", "quic", r)
	}
	counter(descReloads, m.reloads.ok.Load(), "ok")
	counter(descReloads, m.reloads.failed.Load(), "error")
	draining := 0.0
	if m.core.Draining() {
		draining = 1
	}
	gauge(descDraining, draining)
	counter(descSlowConsumers, st.SlowConsumers)
	counter(descUnresponsive, st.Unresponsive)
	counter(descWriteFailures, st.WriteFailures)
	gauge(descQueueDelay, time.Duration(st.MaxQueueDelayNs).Seconds())
	counter(descRateLimited, st.RateLimited)
	counter(descFlooders, st.Flooders)
	counter(descCrowded, st.CrowdedBusy)
	bs := m.bans.Stats()
	gauge(descAutobanActive, float64(bs.Active))
	counter(descAutobanBans, bs.Bans)
	counter(descMemoryTrims, int64(m.trimmer.Trims()))
	if m.node != nil {
		collectCluster(ch, m.node.Stats(), st.RemoteCalls)
	}
}

// collectCluster sends the cluster families of a node's stats; remoteCalls
// is the core's count of calls with a party on another node.
func collectCluster(ch chan<- prometheus.Metric, cs cluster.Stats, remoteCalls int64) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descClusterCalls, float64(remoteCalls))
	counter(descClusterFrames, cs.MediaFramesReceived, "in")
	counter(descClusterFrames, cs.MediaFramesSent, "out")
	counter(descClusterBytes, cs.MediaBytesReceived, "in")
	counter(descClusterBytes, cs.MediaBytesSent, "out")
	for r, n := range cs.MediaDropped {
		counter(descClusterMediaDrops, n, r)
	}
	counter(descClusterSignals, cs.SignalsReceived, "in")
	counter(descClusterSignals, cs.SignalsSent, "out")
	for r, n := range cs.SignalsDropped {
		counter(descClusterSignalDrops, n, r)
	}
	connected := 0.0
	if cs.Conn == "connected" {
		connected = 1
	}
	gauge(descClusterConnected, connected)
	counter(descClusterReconnects, cs.Reconnects)
	gauge(descClusterEntries, float64(cs.EntriesLocal), "local")
	gauge(descClusterEntries, float64(cs.EntriesTotal), "all")
	gauge(descClusterAlive, float64(cs.NodesAlive))
	counter(descClusterLost, cs.NodesLost)
}

// newRegistry returns a registry with the server's families and the
// process and Go runtime collectors.
func newRegistry(m *metricsCollector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return reg
}
