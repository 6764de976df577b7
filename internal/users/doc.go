// Package users owns gatehouse's accounts: usernames and their canonical
// form, password hashing (argon2id, with bcrypt accepted for imported
// accounts) and policy, the bounded hashing limiter, and Service, the
// account business layer over a storage.UserStore: password checks for
// the token endpoint, and account management under the privilege model
// (Actor) for the HTTP API and the CLI.
//
// The stores themselves live in internal/storage; the client registry sits
// next to the token endpoint in internal/auth.
package users
