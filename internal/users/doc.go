// Package users owns gatehouse's persistent state behind the Store
// interface: user accounts and their password hashes (argon2id, with bcrypt
// accepted for imported accounts), the server's signing keys, refresh
// tokens with their rotation and reuse detection (RFC 9700 §4.14), the
// record of issued access tokens that revocation (RFC 7009) and the
// deny-list read, and registered OAuth 2.0 clients. The embedded SQLite
// store is the default; other engines implement the same Store and pass the
// same conformance suite.
//
// Service is the business layer over a Store: password and client
// authentication for the token endpoint, account and client management for
// the HTTP API, and the revocations that account events imply.
//
// users imports no other gatehouse package.
package users
