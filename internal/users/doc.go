// Package users owns gatehouse's persistent state: user accounts, their
// password hashes (argon2id, with bcrypt accepted for imported accounts) and
// the server's signing keys, behind the Store interface. The embedded SQLite
// store is the default; other engines implement the same Store and pass the
// same conformance suite.
//
// users imports no other gatehouse package.
package users
