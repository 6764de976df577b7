// Command faultrun is the loopback fault run behind `make faultrun` and
// RELIABILITY.md: it builds and starts the real server, drives a bounded
// load at it on 127.0.0.1, takes its store away (PostgreSQL restarted, stopped and frozen through a
// TCP proxy; SQLite's disk filled on a small tmpfs) and reports, per
// scenario, the answers by status and endpoint, the worst latency, the
// recovery time, /readyz, whether every acknowledged write survived and
// whether the change feed came back.
//
//	go run ./tools/faultrun [-scenarios restart,stop,freeze,disk] [-postgres URL]
//
// Everything is bounded in count and time and talks only to 127.0.0.1;
// what it creates (server processes, a PostgreSQL schema, the tmpfs
// mount) is removed at the end, also on Ctrl-C. Server logs, every
// request as CSV and the evidence of each failure stay in -out.
// `go run ./tools/faultrun -h` lists the flags.
//
// It exits 1 when a scenario breaks a requirement: a 500, an answer slower
// than the 15 s write timeout (or none at all), an acknowledged write
// lost, /readyz not failing during the fault or not back after it, or a
// revocation not seen by the other replica within 1 s.
package main
