// Package storage is gatehouse's storage contract: the records, the store
// interface split by aggregate (users, signing keys and server secrets,
// sessions, the change log, clients, login throttling) and the sentinel
// errors every engine returns. Engines live below it (sqlstore: SQLite
// and PostgreSQL); storetest is the conformance suite each one passes.
//
// Each method's doc says which sentinels it returns; nothing here says how
// an engine does it. Times are stored in UTC with nanosecond precision.
package storage
