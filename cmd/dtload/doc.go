// Command dtload is the load generator of dtcall: it drives N concurrent
// calls (2N clients of package client) against a running dtoperator, or
// the same traffic against a minimal forwarder that serves as the
// yardstick, and reports what a voice user would feel.
//
//	dtload users --count N --out FILE [--prefix load]
//	dtload run --server HOST --pin PIN --accounts FILE [flags]
//	dtload run --baseline --server HOST --pin PIN [flags]
//	dtload baseline --cert FILE --key FILE [--listen 127.0.0.1 --command P --quic P]
//	dtload idle --server HOST --pin PIN --accounts FILE [--count N --parallel 32 --hold 5s]
//
// --server may name several nodes: HOST,HOST2,... or the flag repeated.
// Each is HOST (the --command, --media and --quic ports) or
// HOST:COMMAND:MEDIA:QUIC (HOST:COMMAND:MEDIA: QUIC = COMMAND; IPv6 in
// brackets, [::1]:1991:2014:1991). Clients are spread over the nodes
// round-robin (client k on node k mod N; call i's caller is client 2i, its
// callee 2i+1), so with two nodes or more every call's parties are on
// different nodes: the report names the nodes and says the calls were
// cross-node. --server-pid takes PID,PID2,... (one per node): CPU and RSS
// are their sums. The baseline takes one node.
//
// --pin takes the forms of dtcall --pin: the server's certificate file
// (PEM; its first certificate is pinned, whole), or a fingerprint as
// dtoperator logs it at start: "sha256:HEX" (fingerprint=, the whole
// certificate), "spki:HEX" or "sha256/BASE64" (spki=, spki_base64=: its
// public key).
//
// dtoperator writes its self-signed certificate (DATA/cert.pem) on its
// first start, so a server started just before dtload may not have
// written it yet. With --pin FILE, run and idle wait up to --wait
// (default 30 s) for the file to appear and hold a certificate, saying so
// on stderr; if they had to wait, they then dial the server (without
// logging in) until it answers, within the same bound, since it listens
// only after writing the certificate (not with --baseline: the forwarder
// pairs every connection). At the bound they fail with what they waited
// for; --wait 0 waits for nothing.
//
// users writes a users file of load accounts (load0001..) with cheap
// scrypt parameters (N=16, r=8, p=1; the server reads the parameters from
// each hash) for dtoperator --users, and FILE.accounts ("name password"
// per line) for dtload run --accounts. Load accounts are for load tests
// only.
//
// run starts --calls calls spread evenly over --ramp. In each, both
// parties dial (--transport tcp, quic, datagram or mixed, or
// --caller-transport and --callee-transport), log in and register media;
// the caller calls, the callee accepts, and both send --frame bytes
// --rate times a second until ramp + --duration after the start, then the
// caller hangs up. Each frame starts with its sequence number and send
// time (8 + 8 bytes, big-endian; nanoseconds since the run's start on the
// monotonic clock, which sender and receiver share). Stream media is
// re-framed at the receiver by the frame size; a datagram is one frame.
// Before its first numbered frame each side sends probes (sequence 0)
// until it hears from the other, so that set-up is not counted as
// latency.
//
// The report gives one-way latency p50/p90/p99/max, jitter (mean absolute
// difference of consecutive latencies per direction), loss, frames per
// second delivered, logins and call set-ups per second (over the span
// from the first start to the last end: with a ramp, this is the offered
// rate unless the server is slower) with their p50/p99 duration, when
// the last call was up (seconds from the start: how long a storm took to
// be served), failed calls by reason, dtload's own CPU (it shares the
// machine), and with --server-pid the server's CPU (/proc/PID/stat) and RSS
// (/proc/PID/status). A live bar shows progress when stderr is a
// terminal, a line every 5 s otherwise (--quiet for none); the summary
// goes to stdout and --json writes the report. When calls fail, stderr
// gets how many by reason and the first failure (the earliest: its call,
// reason, time and error, naming the user and transport), e.g. "first
// error: call 3, login, at 0.4s: load0005 over tcp: login refused: ...";
// the JSON report has the same as calls_failed, fail_reasons and
// first_error.
//
// --find-max doubles the call count from --start until a step fails the
// criterion (p99 < --max-p99, loss < --max-loss %, failed calls <=
// --max-failed), then bisects between the last good and first bad count;
// each step is --runs runs (default 3) of --ramp + --duration, and passes
// only if a majority of them meet the criterion (2 of 3; a step ends as
// soon as its outcome is decided, so two good or two bad runs in a row
// skip the third). On this kind of machine one run's p99 can differ from
// the next by a factor of three, so a single run decides by luck:
// --runs 1 is the old search, one run per step. Each run gets a line
// (with --runs above 1 also the step's verdict); a bad run's line gives
// its first error. A search where not even one call meets the criterion
// exits 1 and prints, on stderr, the failures of the smallest bad step.
//
// baseline pairs connections in arrival order (1st with 2nd, 3rd with
// 4th, ...) on its TLS listener and, separately, on its QUIC listener,
// and copies every read to the partner, nothing else; on QUIC the first
// stream each side opens, and datagrams. On QUIC, connections that send
// the same TLS server name pair with each other: a QUIC connection
// arrives when the server has its handshake done, which under load is
// not always the order they were dialed in. run --baseline drives it
// with the same traffic, without login or signalling: a call is two
// connections dialed in order, over QUIC both naming the call (so mixed
// transports cannot meet).
//
// idle logs --count users in (dial, login, media registration; --transport
// tcp, quic or datagram), --parallel at a time, holds them idle for
// --hold and logs them out. It reports logins per second with the login
// p50/p99, and with --server-pid the server's RSS before the first login
// and with every user held, and their difference per user: the memory an
// idle logged-in user costs (start the server fresh for that figure). With
// accounts whose hashes are the old p=16 ones it measures the scrypt cost.
// If any login (or its dial or media registration) fails, idle exits 1
// with the count by reason and the first failure's error on stderr.
//
// dtload only connects to the addresses given with --server. Every run is
// bounded: it ends by ramp + duration + 25 s whatever happens. Ctrl-C
// stops the calls and still prints the report. Exit codes: 0 every call
// (idle: every login) succeeded (find-max: the search found a call count
// meeting the criterion), 1 an error, a failed call or login (find-max:
// no count met the criterion), 2 usage, 130 interrupted.
package main
