// Command scale is the scale run behind `make scale`: it seeds a store
// through the storage API with 100,000 users and sessions and 400,000 live
// revocations (200,000 revoked sessions and 200,000 revoked access
// tokens), starts the real server binary on it and measures what the
// sessions issue asks for (storage rows per session after 1,000 refreshes,
// idle CPU per replica from /proc ticks, RSS, and login / refresh /
// /users/me latency) next to the same run on an empty store, then prints a
// markdown table for BENCHMARKS.md.
//
// Everything is bounded in count and time and talks only to 127.0.0.1.
// `go run ./tools/scale -h` lists the flags.
package main
