// Package storetest is the conformance suite of the storage contract:
// every storage.Store engine, and any fake, passes RunTests, and engines
// that several processes share pass RunTwoInstanceTests too. The cases are
// split by aggregate (users.go, keys.go, sessions.go, changes.go,
// clients.go, attempts.go) and read the contract's doc comments, never an
// engine's code.
//
// It also owns Faulty, the failure-injecting Store wrapper that other
// packages' tests use to see what a store fault does to them, with the
// operation names (Op…) it and the store instrumentation share, and the
// PostgreSQL test database helpers (PostgresURL, PostgresSchema).
package storetest
