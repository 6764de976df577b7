// Package sqlstore owns gatehouse's SQL engines of storage.Store: SQLite
// (OpenSQLite, through modernc.org/sqlite) and PostgreSQL (OpenPostgres,
// through pgx's database/sql driver, also a storage.Notifier), and their
// migrations.
//
// Each method is one SQL body, written once against database/sql in the
// file of its aggregate (users.go, keys.go, sessions.go, changes.go,
// clients.go, attempts.go). A flavor (flavor.go) holds what the engines do
// differently: placeholders, row locks versus BEGIN IMMEDIATE, advisory
// locks, NOTIFY, and which driver errors are which storage sentinel
// (errors.go is the boundary where they become them). On SQLite, whose
// writers take turns, the writes waiting for a turn share its
// transaction (batch.go). One migration loop
// (migrate.go) applies migrations/<engine>/NNNN_description.sql; from 0004
// on, one number is the same change on both engines.
package sqlstore
